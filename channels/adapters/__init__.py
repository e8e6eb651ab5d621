"""Message-channel adapters behind one port (`channels.adapters.port`); they import nothing of ours.

Each adapter takes its configuration in its constructor; the registry builds them on demand, never at
import time. The outbox and delivery workers call `send` and record the `SendResult`.
"""
