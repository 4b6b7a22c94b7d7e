"""Replication of a mirror module's directories to the peer: frames, the peer link
(sender, :class:`~hamod.replication.link.PeerLink`) and the receiver that applies them."""
