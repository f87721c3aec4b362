"""The harness is ready for passkey tests: the portal's names are a secure context over plain
http, and Chromium's virtual authenticator creates and uses a discoverable credential there."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page

from harness.browser import enable_virtual_authenticator
from tests.browser.conftest import PORTAL_HOST, Stack

# What a registration page's script would run; here through the test driver (the portal's CSP
# allows no inline script). Resident key and user verification required, as for passkeys.
CREATE = """async (rpId) => {
  const random = (n) => crypto.getRandomValues(new Uint8Array(n));
  const credential = await navigator.credentials.create({publicKey: {
    rp: {id: rpId, name: "authgate test"},
    user: {id: random(16), name: "passkey@example.com", displayName: "Passkey"},
    challenge: random(32),
    pubKeyCredParams: [{type: "public-key", alg: -7}],
    authenticatorSelection: {residentKey: "required", userVerification: "required"},
  }});
  return credential.type;
}"""
GET = """async (rpId) => {
  const assertion = await navigator.credentials.get({publicKey: {
    rpId, challenge: crypto.getRandomValues(new Uint8Array(32)), userVerification: "required",
  }});
  return assertion.response.userHandle !== null;
}"""


async def test_the_virtual_authenticator_makes_and_uses_a_passkey(
    page: Page, context: BrowserContext, stack: Stack
) -> None:
    await page.goto(f"{stack.portal}/portal/login")
    assert await page.evaluate("window.isSecureContext") is True
    authenticator = await enable_virtual_authenticator(context, page)
    assert await page.evaluate("PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable()")
    assert await page.evaluate(CREATE, PORTAL_HOST) == "public-key"
    stored = await authenticator.credentials()
    assert len(stored) == 1
    assert stored[0]["isResidentCredential"] is True and stored[0]["rpId"] == PORTAL_HOST
    # Discoverable: found without an allowCredentials list, with the user handle (passwordless).
    assert await page.evaluate(GET, PORTAL_HOST) is True
