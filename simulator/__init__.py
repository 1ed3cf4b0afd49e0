"""Rating terminals without hardware: real firmware under the MicroPython Unix port."""
