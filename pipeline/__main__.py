"""``python -m pipeline`` runs the same CLI as the ``trialwatch`` command."""

from pipeline.cli import main

if __name__ == "__main__":
    main()
