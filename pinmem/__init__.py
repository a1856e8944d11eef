"""pinmem: Pin the Memory (Kim et al., CVPR 2022) for domain-generalised semantic segmentation."""

from pinmem.errors import PinmemError

__version__ = "0.1.0"

__all__ = ["PinmemError", "__version__"]
