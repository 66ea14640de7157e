"""The agent's model: the protocol picks the pydantic-ai model; the provider points at the
gateway and trusts only the factory CA."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel

from codefactory.engines.agent.model import gateway_model, trusting_only
from codefactory.engines.errors import EngineError
from codefactory.engines.session import ModelAccess


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test factory CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _access(ca_file: Path, protocol: str) -> ModelAccess:
    return ModelAccess(
        base_url="https://gateway.codefactory.internal:8443/",
        egress_host="gateway.codefactory.internal:8443",
        credential="cfk-test",
        ca_file=ca_file,
        model="gpt-4.1-mini",
        protocol=protocol,
    )


def _built(access: ModelAccess) -> tuple[Model, str, int]:
    async def build() -> tuple[Model, str, int]:
        async with gateway_model(access, max_retries=1) as model:
            client = model.client  # type: ignore[attr-defined]
            return model, str(client.base_url), client.max_retries

    return asyncio.run(build())


@pytest.mark.parametrize(
    ("protocol", "kind", "base_url"),
    [
        ("openai-chat", OpenAIChatModel, "https://gateway.codefactory.internal:8443/v1/"),
        ("openai-responses", OpenAIResponsesModel, "https://gateway.codefactory.internal:8443/v1/"),
        ("anthropic-messages", AnthropicModel, "https://gateway.codefactory.internal:8443"),
    ],
)
def test_protocol_picks_the_model_and_the_gateway_url(
    ca_file: Path, protocol: str, kind: type, base_url: str
) -> None:
    model, url, retries = _built(_access(ca_file, protocol))
    assert isinstance(model, kind)
    assert model.model_name == "gpt-4.1-mini"
    assert url.rstrip("/") == base_url.rstrip("/")
    assert retries == 1


def test_unknown_protocol_is_an_engine_error(ca_file: Path) -> None:
    with pytest.raises(EngineError, match="unknown model protocol 'gemini'"):
        _built(_access(ca_file, "gemini"))


def test_ca_file_missing_or_not_a_certificate_is_an_engine_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="cannot load the gateway CA"):
        trusting_only(str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(EngineError, match="cannot load the gateway CA"):
        trusting_only(str(tmp_path / "junk.pem"))


def test_the_context_verifies_and_trusts_only_the_ca_file(ca_file: Path) -> None:
    context = trusting_only(str(ca_file))
    assert context.check_hostname is True
    subjects = [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()]
    assert subjects == [{"commonName": "test factory CA"}]
