from streambench.cli import main

raise SystemExit(main())
