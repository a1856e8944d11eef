from pinmem.cli import main

raise SystemExit(main())
