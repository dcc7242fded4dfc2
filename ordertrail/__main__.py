import sys

from ordertrail.adapters.cli import main

sys.exit(main())
