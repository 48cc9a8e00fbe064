"""Identity: principals behind API and worker tokens, orgs, and the bootstrap of a fresh installation."""

from ferryman.identity.models import ALL_SCOPES, IssuedToken, Org, Principal, Scope, WorkerPrincipal
from ferryman.identity.repository import IdentityRepository
from ferryman.identity.service import Bootstrap, IdentityService, write_secret_file

__all__ = [
    "ALL_SCOPES",
    "Bootstrap",
    "IdentityRepository",
    "IdentityService",
    "IssuedToken",
    "Org",
    "Principal",
    "Scope",
    "WorkerPrincipal",
    "write_secret_file",
]
