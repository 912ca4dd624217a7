from .diagnostics.cli import main

raise SystemExit(main())
