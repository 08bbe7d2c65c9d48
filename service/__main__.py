"""``python -m service`` runs the ``mfa-enforcer`` command line."""

from service.cli import main

main()
