"""Running experiments: output callbacks, exact resumption, ``zooter cv`` and ``zooter sweep``."""
