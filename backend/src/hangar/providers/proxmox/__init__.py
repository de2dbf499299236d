"""The `proxmox` provider: QEMU VMs and LXC containers on a Proxmox VE node, through its API.

- `config.py`: the provider's settings (`ProxmoxConfig`), checked when built; pure Python.
- `client.py`: the one module that speaks to the API (proxmoxer): typed calls, retries of
  transient errors, task waits, deadlines.
- `guests.py`: what a guest is to the provider: its kind (and what that can do), its image, the
  tags that make it a machine of a run; pure data.
- `disks.py`: a VM's disks, named volumes attached through its config.
- `provider.py`: `ProxmoxProvider`, the provider protocol on top of the client.

Nothing is imported here, so `hangar.providers.proxmox.config` can be read (by the settings)
without proxmoxer, which only the optional `proxmox` extra installs.
"""
