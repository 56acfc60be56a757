"""``python -m zooter`` runs the ``zooter`` command."""

from zooter.cli import main

if __name__ == "__main__":
    main()
