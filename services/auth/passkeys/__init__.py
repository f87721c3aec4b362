"""Passkeys (WebAuthn): registering discoverable credentials and signing in with them."""
