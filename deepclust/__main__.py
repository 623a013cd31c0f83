from deepclust.cli import main

raise SystemExit(main())
