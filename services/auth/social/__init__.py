"""Sign-in through an external identity provider (OpenID Connect), without any HTTP framework.

`settings` reads LibreChat's variables, `flow` seals the browser-bound flow state, `oidc` talks
to an OpenID provider (discovery, token exchange, ID-token and logout-token verification),
`oauth2` to the OAuth2 presets (GitHub, Discord, Facebook and their profile APIs), `claims`
reads roles and profile fields, and `signin` decides which local user a verified identity is.
"""
