"""TOTP two-factor authentication with backup codes, compatible with LibreChat's enrolments."""
