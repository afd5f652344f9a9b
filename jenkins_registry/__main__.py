"""`python -m jenkins_registry` runs the `jr` command."""

from jenkins_registry.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
