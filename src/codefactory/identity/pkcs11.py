"""The `Signer` port on a PKCS#11 token (an HSM; SoftHSM2 in tests) through `python-pkcs11`.

Keys are Ed25519 (`CKK_EC_EDWARDS`, curve OID 1.3.101.112), generated inside the token with
`CKA_EXTRACTABLE = false` and `CKA_SENSITIVE = true`, found by `CKA_LABEL`, and sign with
`CKM_EDDSA` (PKCS#11 v3.0 §2.3.14): the private key never leaves the token. Every failure
(library, token, PIN, key) raises `SignerUnavailable` naming the setting: nothing is signed on
a guess. The PIN is never logged or put in an error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from codefactory.identity.errors import SignerUnavailable
from codefactory.identity.jwk import thumbprint
from codefactory.identity.settings import Pkcs11Settings

ED25519_OID = "1.3.101.112"  # RFC 8410 §3
_LOCK = threading.Lock()  # one library per process; reinitialising must not race a session


class Pkcs11Keyring:
    """The token named by `identity.pkcs11`: finds, makes and relabels Ed25519 keys."""

    def __init__(self, settings: Pkcs11Settings) -> None:
        self.settings = settings

    def signer(self, label: str) -> Pkcs11Signer:
        """The key labelled `label` (checked to exist: `SignerUnavailable` when missing)."""
        signer = Pkcs11Signer(self, label)
        signer.public_key()
        return signer

    def has(self, label: str) -> bool:
        """Whether the token holds a key labelled `label`."""
        return bool(self.labels(label, exact=True))

    def create(self, label: str) -> Pkcs11Signer:
        """Generate an Ed25519 key pair labelled `label` in the token (non-extractable,
        sensitive); refuses when one exists already."""
        from pkcs11 import Attribute, KeyType, Mechanism
        from pkcs11.util.ec import encode_named_curve_parameters

        with self.session() as session:
            if _find(session, label, "public") is not None:
                raise SignerUnavailable(self._setting("token_label"), f"key {label} exists")
            session.generate_keypair(
                KeyType.EC_EDWARDS,
                0,
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                store=True,
                label=label,
                public_template={Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)},
                private_template={
                    Attribute.EXTRACTABLE: False,
                    Attribute.SENSITIVE: True,
                    Attribute.SIGN: True,
                },
            )
        return Pkcs11Signer(self, label)

    def relabel(self, label: str, new_label: str) -> None:
        """Give both halves of key `label` the label `new_label` (a retired issuer key)."""
        from pkcs11 import Attribute

        with self.session() as session:
            for kind in ("public", "private"):
                found = _find(session, label, kind)
                if found is not None:
                    found[Attribute.LABEL] = new_label

    def labels(self, prefix: str, *, exact: bool = False) -> list[str]:
        """Labels of the public keys in the token that start with (or equal) `prefix`."""
        from pkcs11 import Attribute, ObjectClass

        with self.session() as session:
            found = session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})
            labels = sorted({str(obj[Attribute.LABEL]) for obj in found})
        return [x for x in labels if (x == prefix if exact else x.startswith(prefix))]

    @contextmanager
    def session(self) -> Iterator[Any]:
        """A logged-in read-write session of the token; `SignerUnavailable` names what failed."""
        import pkcs11
        from pkcs11.exceptions import PinIncorrect, PinLenRange, PKCS11Error

        with _LOCK:
            token = self._token()
            try:
                session = token.open(rw=True, user_pin=self._pin())
            except (PinIncorrect, PinLenRange) as error:
                raise SignerUnavailable(self._pin_setting(), "the PIN is wrong") from error
            except PKCS11Error as error:
                raise SignerUnavailable(
                    self._setting("token_label"), f"cannot open token: {type(error).__name__}"
                ) from error
            try:
                yield session
            except pkcs11.exceptions.PKCS11Error as error:
                raise SignerUnavailable(
                    self._setting("token_label"), f"the token refused: {type(error).__name__}"
                ) from error
            finally:
                session.close()

    def _token(self) -> Any:
        import pkcs11
        from pkcs11.exceptions import NoSuchToken, PKCS11Error

        library = self.settings.library
        if not Path(library).is_file():
            raise SignerUnavailable(self._setting("library"), f"no PKCS#11 module at {library}")
        try:
            lib = pkcs11.lib(str(library))
            try:
                return lib.get_token(token_label=self.settings.token_label)
            except NoSuchToken:
                lib.reinitialize()  # a token initialised after this process loaded the module
                return lib.get_token(token_label=self.settings.token_label)
        except NoSuchToken as error:
            raise SignerUnavailable(
                self._setting("token_label"), f"no token labelled {self.settings.token_label!r}"
            ) from error
        except (PKCS11Error, RuntimeError, OSError) as error:
            raise SignerUnavailable(
                self._setting("library"), f"cannot load {library}: {type(error).__name__}"
            ) from error

    def _pin(self) -> str:
        if self.settings.pin is not None:
            return self.settings.pin.get_secret_value()
        if self.settings.pin_file is None:
            raise SignerUnavailable(self._pin_setting(), "no PIN is configured")
        try:
            return self.settings.pin_file.read_text().strip()
        except OSError as error:
            raise SignerUnavailable(
                self._setting("pin_file"), f"cannot read {self.settings.pin_file}: {error}"
            ) from error

    def _pin_setting(self) -> str:
        return self._setting("pin_file" if self.settings.pin_file else "pin")

    @staticmethod
    def _setting(field: str) -> str:
        return f"identity.pkcs11.{field}"


class Pkcs11Signer:
    """One Ed25519 key of a PKCS#11 token, by label (the `Signer` port)."""

    def __init__(self, keyring: Pkcs11Keyring, label: str) -> None:
        self.name = label
        self._keyring = keyring
        self._public: bytes | None = None

    @property
    def key_id(self) -> str:
        """RFC 7638 thumbprint of the public key."""
        return thumbprint(self.public_key())

    def public_key(self) -> bytes:
        """The raw 32-byte public key (CKA_EC_POINT, a DER OCTET STRING or raw)."""
        if self._public is None:
            from pkcs11 import Attribute

            with self._keyring.session() as session:
                key = self._require(session, "public")
                point = bytes(key[Attribute.EC_POINT])
            self._public = point[2:] if len(point) == 34 and point[:2] == b"\x04\x20" else point
            if len(self._public) != 32:
                raise SignerUnavailable(
                    "identity.pkcs11.token_label", f"key {self.name} is not an Ed25519 key"
                )
        return self._public

    def sign(self, message: bytes) -> bytes:
        """Sign `message` in the token with CKM_EDDSA."""
        from pkcs11 import Mechanism

        with self._keyring.session() as session:
            signature = bytes(
                self._require(session, "private").sign(message, mechanism=Mechanism.EDDSA)
            )
        return signature

    def _require(self, session: Any, kind: str) -> Any:
        found = _find(session, self.name, kind)
        if found is None:
            raise SignerUnavailable(
                "identity.pkcs11.token_label",
                f"the token {self._keyring.settings.token_label!r} has no {kind} key "
                f"labelled {self.name!r}",
            )
        return found


def _find(session: Any, label: str, kind: str) -> Any:
    from pkcs11 import Attribute, ObjectClass

    object_class = ObjectClass.PUBLIC_KEY if kind == "public" else ObjectClass.PRIVATE_KEY
    for found in session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label}):
        return found
    return None
