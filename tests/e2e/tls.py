"""The tests' local CA is the product's (`ferryman.tls`): one implementation, also behind `ferryman tls dev-cert`."""

from ferryman.tls import LocalCA, make_local_ca

__all__ = ["LocalCA", "make_local_ca"]
