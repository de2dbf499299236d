"""Proxmox VE scenarios through the `proxmox` provider and the service (credential-gated)."""
