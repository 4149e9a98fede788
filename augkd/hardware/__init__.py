"""The machine a stage runs on: device and threads, precision, whether a GPU Ray assigned is
usable, free memory, and measured peak memory."""
