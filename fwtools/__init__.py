"""Build the firmware image with mpy-cross and put it on a board with mpremote."""
