"""The Cython core: bounded reads, container decoders, extent maps, guest reads."""
