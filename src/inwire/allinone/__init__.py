"""Running the registered services together: the ``inwire up`` supervisor and the
one-process composition, plus the per-service ``serve`` and ``migrate`` they share."""
