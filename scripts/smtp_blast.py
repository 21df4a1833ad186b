#!/usr/bin/env python3
"""Raw SMTP load against the test Postfix, for comparison with the fan-out
benchmark: how many messages/s does Postfix accept (250 after DATA) on this
machine when the client costs next to nothing?

  scripts/smtp_blast.py [--port 11025] [--sessions 8] [--messages 1000]
                        [--size 4000] [--pipelining] [--nodelay/--no-nodelay]

Recipients f0001..fNNNN@customer.test (the benchmark's followers; they must be
registered with `scripts/mailstack.sh add-user`). Prints one line of results.
"""
import argparse
import asyncio
import socket
import time


async def read_reply(reader):
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), lines


async def session(args, queue, counter):
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if args.nodelay else 0)
    await read_reply(reader)
    writer.write(b"EHLO blast.example.test\r\n")
    await read_reply(reader)
    body = ("x" * 76 + "\r\n") * (args.size // 78)
    while True:
        try:
            i = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        rcpt = f"f{(i % args.recipients) + 1:04d}@customer.test"
        msg = (
            f"From: support@example.test\r\nTo: {rcpt}\r\nSubject: blast {i}\r\n"
            f"Message-ID: <blast-{i}-{time.time_ns()}@example.test>\r\n\r\n{body}"
        ).encode()
        cmds = [b"MAIL FROM:<support@example.test>\r\n", f"RCPT TO:<{rcpt}>\r\n".encode(), b"DATA\r\n"]
        if args.pipelining:
            writer.write(b"".join(cmds))
            for _ in cmds:
                code, _ = await read_reply(reader)
        else:
            for c in cmds:
                writer.write(c)
                code, _ = await read_reply(reader)
        assert code == 354, code
        if args.split:  # as lettre does: the body, then the final dot, in two writes
            writer.write(msg)
            await writer.drain()
            writer.write(b"\r\n.\r\n")
        else:
            writer.write(msg + b"\r\n.\r\n")
        code, _ = await read_reply(reader)
        assert code == 250, code
        counter[0] += 1
    writer.write(b"QUIT\r\n")
    await read_reply(reader)
    writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=11025)
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--recipients", type=int, default=1000)
    p.add_argument("--size", type=int, default=4000)
    p.add_argument("--pipelining", action="store_true")
    p.add_argument("--split", action="store_true")
    p.add_argument("--no-nodelay", dest="nodelay", action="store_false")
    args = p.parse_args()
    queue = asyncio.Queue()
    for i in range(args.messages):
        queue.put_nowait(i)
    counter = [0]
    start = time.perf_counter()
    await asyncio.gather(*(session(args, queue, counter) for _ in range(args.sessions)))
    elapsed = time.perf_counter() - start
    print(
        f"sessions={args.sessions} pipelining={args.pipelining} nodelay={args.nodelay} "
        f"split={args.split} size={args.size} sent={counter[0]} in {elapsed:.2f}s: {counter[0] / elapsed:.0f} msg/s"
    )


asyncio.run(main())
