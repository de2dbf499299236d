"""QEMU scenarios through the `qemu` provider and the service."""
