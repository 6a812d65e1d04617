"""The status taxonomy: how a run ended, and what each error row's ``status`` means.

Shared by the engine (which writes them) and analysis (which counts them), so
neither imports the other.

A run's ``status`` in its manifest:

=============  ===============================================================
``running``    being written now (or its process was killed: ``stale`` then)
``completed``  ran to the end of its schedule
``aborted``    stopped early (Ctrl-C, SIGTERM, a stop button); what was
               captured is kept
``failed``     ended by an error (the manifest's ``error`` says which)
``partial``    a worker process died; the parts it wrote are kept
=============  ===============================================================

Error rows carry a ``status`` naming their class, so the summary can
reconcile ``sent = received + errors + timeouts``:

===================  ==========================================  ===========
status               meaning                                     resolves a
                                                                 sent message
===================  ==========================================  ===========
``error_reply``      the server answered with an error            yes
``4xx``/``5xx``      an HTTP response that is not a success       yes
``UNAVAILABLE`` etc  a gRPC status other than OK (its name)       yes
``disconnected``     the connection dropped before the reply      yes
``not_connected``    due to be sent while disconnected (no send)  no (never sent)
``send_failed``      the transport refused the message            no (never sent)
``garbage``          a reply that is not JSON / has no id where    no
                     answers carry it (``error`` names the path
                     looked at and the fields the reply has)
``unmatched``        a reply whose id matches nothing in flight    no
``late``             a reply after its message timed out           no
``too_big``          a frame larger than max_message_bytes         no
``duplicate``        a fan-out message received again by a        no
                     member (docs/backends.md#fan-out)
``late_delivery``    a fan-out copy after its timeout             no
``stray_delivery``   a fan-out copy outside the sender's group    no
===================  ==========================================  ===========

Rows of the conversation kinds (docs/backends.md) carry a name as ``status``:

============  =============================================================
kind          ``status``
============  =============================================================
``step``      the set-up step's name (``auth``, ``join``); latency from its send
``notify``    none: a message sent that expects no reply (``expect: none``);
              not part of ``sent`` and never resolved; for ``expect: fanout``
              the sender's group
``delivery``  the group: a fan-out message received by a member (latency from
              the sender's intended send time)
``timeout``   ``delivery``: a member that never got a fan-out message
``other``     the name of the ``replies.rules`` entry that recognised the reply
              (``welcome``, ``ping``, ``complete``), or ``stream`` for a further
              answer on an open stream: the server's, not an error
============  =============================================================
"""

from __future__ import annotations

from typing import Literal

RunStatus = Literal["running", "completed", "aborted", "failed", "partial"]
FINISHED: tuple[RunStatus, ...] = ("completed", "aborted", "failed", "partial")

# A gRPC call or stream that ended with a status other than OK: the status's name.
GRPC_STATUS_ERRORS = ("CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                      "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
MESSAGE_ERRORS = ("error_reply", "disconnected", *GRPC_STATUS_ERRORS)
HTTP_STATUS_ERROR = r"^\d{3}$"  # an HTTP response that is not 2xx: its status code
SEND_ERRORS = ("not_connected", "send_failed")
FANOUT_ERRORS = ("duplicate", "late_delivery", "stray_delivery")  # copies nobody awaited
PROTOCOL_ERRORS = ("garbage", "unmatched", "late", "too_big", *FANOUT_ERRORS)
