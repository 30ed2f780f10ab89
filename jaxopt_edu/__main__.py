"""`python -m jaxopt_edu`: the optimizer lab's command line (`jaxopt_edu.lab.cli`)."""

from jaxopt_edu.lab.cli import main

raise SystemExit(main())
