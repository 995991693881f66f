"""Who is signing in and out: sign-in throttling by address, the hand-over of a browser's anonymous
conversations on sign-in, the socket handshake's session and user lookup; and who may join without an
identity provider: invitations, and sign-up with an operator's approval."""
