"""Linux guest inspection: the contract's ``linux`` object, each fact with its evidence.

Source: ../shared/docs/json-contract.md (the ``linux`` object) and
import-rules.md section 1.3. Every collector reads the guest through
:class:`~imgscan.guest.linux.tree.GuestTree`.
"""
