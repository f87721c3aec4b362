"""The two-factor building blocks: sealed secrets, LibreChat's CREDS_KEY formats, TOTP with a
spent step, backup codes, and temp tokens over the real store."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets

import jwt
import pyotp
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from services.auth.store import Store
from services.auth.two_factor import backup_codes
from services.auth.two_factor.codes import STEP_SECONDS, Totp, new_secret, otpauth_url
from services.auth.two_factor.librechat import (
    UndecryptableSecret,
    decrypt_totp_secret,
    librechat_code_hash,
)
from services.auth.two_factor.secrets import SecretSealer, UnreadableSecret, key_id
from services.auth.two_factor.temp_tokens import MAX_ATTEMPTS, InvalidTempToken, TempTokens
from tests.auth.two_factor_helpers import encrypt_v3, librechat_secret


def encrypt_v2(value: str, creds_key: str) -> str:
    """LibreChat's `encryptV2`: AES-CBC (PKCS#7) with a random IV, `<iv hex>:<data hex>`."""
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(value.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(bytes.fromhex(creds_key)), modes.CBC(iv)).encryptor()
    return f"{iv.hex()}:{(encryptor.update(padded) + encryptor.finalize()).hex()}"


# Sealed secrets -------------------------------------------------------------------------------


def test_a_sealed_secret_opens_only_for_its_user_and_key() -> None:
    sealer = SecretSealer(secrets.token_hex(32))
    sealed = sealer.seal("user-1", "JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in sealed and sealed.startswith(f"ag1:{sealer.current_kid}:")
    assert sealer.open("user-1", sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(UnreadableSecret):
        sealer.open("user-2", sealed)  # copied onto another account
    with pytest.raises(UnreadableSecret):
        SecretSealer(secrets.token_hex(32)).open("user-1", sealed)
    with pytest.raises(UnreadableSecret):
        sealer.open("user-1", sealed[:-4] + "AAAA")


def test_an_old_key_still_opens_and_the_new_one_seals() -> None:
    old, new = secrets.token_hex(32), secrets.token_hex(32)
    sealed = SecretSealer(old).seal("u", "SECRET")
    rotated = SecretSealer(new, [old])
    assert rotated.open("u", sealed) == "SECRET"
    assert not rotated.is_current(sealed)
    assert rotated.is_current(rotated.seal("u", "SECRET"))
    assert key_id(new) != key_id(old) and new not in rotated.current_kid


# LibreChat's formats --------------------------------------------------------------------------


def test_librechat_v3_v2_and_plain_secrets_decrypt_with_creds_key() -> None:
    creds_key, secret = secrets.token_hex(32), librechat_secret()
    assert decrypt_totp_secret(encrypt_v3(secret, creds_key), creds_key) == secret
    assert decrypt_totp_secret(encrypt_v2(secret, creds_key), creds_key) == secret
    assert decrypt_totp_secret(secret, None) == secret  # stored before LibreChat encrypted them


@pytest.mark.parametrize("creds_key", [None, "zz" * 32, "ab" * 16])
def test_a_missing_or_malformed_creds_key_is_refused(creds_key: str | None) -> None:
    with pytest.raises(UndecryptableSecret):
        decrypt_totp_secret(encrypt_v3("JBSWY3DPEHPK3PXP", secrets.token_hex(32)), creds_key)


def test_a_wrong_creds_key_does_not_yield_a_secret() -> None:
    stored = encrypt_v3(librechat_secret(), secrets.token_hex(32))
    with pytest.raises(UndecryptableSecret):
        decrypt_totp_secret(stored, secrets.token_hex(32))


def test_librechat_backup_code_hash_is_unsalted_sha256() -> None:
    assert librechat_code_hash(" 0a1b2c3d ") == hashlib.sha256(b"0a1b2c3d").hexdigest()


# TOTP -----------------------------------------------------------------------------------------


def test_codes_of_the_previous_current_and_next_step_match_and_no_further() -> None:
    now = 1_700_000_000.0
    totp, secret = Totp(lambda: now), new_secret()
    step = int(now // STEP_SECONDS)
    reference = pyotp.TOTP(secret)
    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, reference.at(now + offset * STEP_SECONDS)) == step + offset
    for offset in (-3, 3):
        code = reference.at(now + offset * STEP_SECONDS)
        if code not in {reference.at(now + k * STEP_SECONDS) for k in (-1, 0, 1)}:
            assert totp.matching_step(secret, code) is None


def test_a_spent_step_and_every_earlier_one_are_refused() -> None:
    now = 1_700_000_000.0
    totp, secret = Totp(lambda: now), new_secret()
    step = int(now // STEP_SECONDS)
    code = pyotp.TOTP(secret).at(now)
    assert totp.matching_step(secret, code, after_step=step - 1) == step
    assert totp.matching_step(secret, code, after_step=step) is None
    assert totp.matching_step(secret, pyotp.TOTP(secret).at(now - STEP_SECONDS), after_step=step) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"])
def test_malformed_codes_never_match(code: str) -> None:
    assert Totp().matching_step(new_secret(), code) is None


def test_secret_has_160_bits_and_url_is_librechats() -> None:
    secret = new_secret()
    assert len(secret) == 32  # 32 base32 characters: 160 bits
    url = otpauth_url(secret, "a@example.com", "My Chat App")
    assert url == f"otpauth://totp/MyChatApp:a@example.com?secret={secret}&issuer=MyChatApp"


# Backup codes ---------------------------------------------------------------------------------


def test_ten_codes_of_64_bits_hashed_with_a_per_user_salt() -> None:
    first, second = backup_codes.generate(), backup_codes.generate()
    assert len(first.plain) == 10 and len(set(first.plain)) == 10
    assert all(len(bytes.fromhex(code)) * 8 >= 64 for code in first.plain)
    assert first.salt != second.salt
    code = first.plain[0]
    assert backup_codes.code_hash(first.salt, code) == first.hashes[0]
    assert backup_codes.code_hash(first.salt, code.upper()) == first.hashes[0]
    assert backup_codes.code_hash(second.salt, code) != first.hashes[0]
    assert hashlib.sha256(code.encode()).hexdigest() not in first.hashes


# Temp tokens ----------------------------------------------------------------------------------


@pytest.fixture
def temp_tokens(fresh_store: Store) -> TempTokens:
    return TempTokens(fresh_store.temp_tokens, secrets.token_hex(32), "authgate")


async def test_a_temp_token_is_consumed_once(temp_tokens: TempTokens) -> None:
    token = await temp_tokens.issue("user-1", 3, in_body=False, login_email="a@example.com")
    claims = temp_tokens.read(token)
    assert (claims.user_id, claims.epoch, claims.login_email) == ("user-1", 3, "a@example.com")
    await temp_tokens.attempt(claims)
    await temp_tokens.consume(claims)
    with pytest.raises(InvalidTempToken):
        await temp_tokens.attempt(claims)
    with pytest.raises(InvalidTempToken):
        await temp_tokens.consume(claims)


async def test_a_temp_token_dies_after_its_attempts(temp_tokens: TempTokens) -> None:
    claims = temp_tokens.read(await temp_tokens.issue("u", 0, in_body=False, login_email=""))
    for _ in range(MAX_ATTEMPTS):
        await temp_tokens.attempt(claims)
    with pytest.raises(InvalidTempToken):
        await temp_tokens.attempt(claims)
    with pytest.raises(InvalidTempToken):
        await temp_tokens.consume(claims.__class__("other-user", claims.jti, 0, False, ""))


async def test_a_temp_token_is_not_an_access_token_nor_forgeable(temp_tokens: TempTokens) -> None:
    token = await temp_tokens.issue("u", 0, in_body=False, login_email="")
    payload = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["typ"] == "2fa-temp+jwt" and payload["aud"] == "authgate-2fa"
    other = TempTokens(temp_tokens._store, secrets.token_hex(32), "authgate")
    with pytest.raises(InvalidTempToken):
        other.read(token)
    expired = {**payload, "exp": int(dt.datetime.now(dt.UTC).timestamp()) - 120}
    for forged in (
        jwt.encode(expired, temp_tokens._key, algorithm="HS256", headers={"typ": "2fa-temp+jwt"}),
        jwt.encode(payload, temp_tokens._key, algorithm="HS256", headers={"typ": "at+jwt"}),
        "not-a-token",
    ):
        with pytest.raises(InvalidTempToken):
            temp_tokens.read(forged)
