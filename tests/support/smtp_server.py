"""A real SMTP server for the mail tests: aiosmtpd on 127.0.0.1, keeping what it is sent.

    python3 smtp_server.py PORT DIR [REPLY ...]

Answers the n-th message's DATA with REPLY n (`250` takes it; `451`, `554` or any other
code refuses it with that code), the last one for every message after; no REPLY: take
every message. Each message taken is written to DIR as `<n>.json`, decoded with Python's
own email parser: `from`, `to` (the envelope's), `subject`, `text` (the plain part), and
`attachments` (`filename`, `content_type`, `data` in base64). `ready` is written to DIR
once the server listens.
"""

import asyncio
import base64
import email
import email.policy
import json
import pathlib
import sys

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, directory, replies):
        self.directory = directory
        self.replies = replies or ["250"]
        self.seen = 0
        self.kept = 0

    async def handle_DATA(self, server, session, envelope):
        reply = self.replies[min(self.seen, len(self.replies) - 1)]
        self.seen += 1
        if reply != "250":
            return f"{reply} refused by the test server"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        attachments = [
            {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "data": base64.b64encode(part.get_content()).decode(),
            }
            for part in message.iter_attachments()
        ]
        self.kept += 1
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "header_from": str(message["From"]),
            "header_to": str(message["To"]),
            "subject": str(message["Subject"]),
            "text": text.get_content() if text is not None else None,
            "attachments": attachments,
        }
        (self.directory / f"{self.kept}.json").write_text(json.dumps(record))
        return "250 OK"


def main():
    port = int(sys.argv[1])
    directory = pathlib.Path(sys.argv[2])
    controller = Controller(Handler(directory, sys.argv[3:]), hostname="127.0.0.1", port=port)
    controller.start()
    (directory / "ready").write_text("")
    try:
        asyncio.new_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
