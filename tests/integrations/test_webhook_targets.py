"""Webhook targets (``integrations.webhook_targets``): public addresses only, checked at save
and at connect, the connection pinned to the checked address, one deadline for everything.

Receivers are real HTTP servers on 127.0.0.1; a resolver is replaced only to play a DNS server
that answers differently from one lookup to the next (rebinding).
"""

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations import webhook_targets
from integrations.webhook_targets import TargetRefused, refusal


class Receiver:
    """An HTTP receiver on 127.0.0.1 that keeps the Host header of each request."""

    def __init__(self):
        self.hosts: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.hosts.append(self.headers["Host"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def resolver(monkeypatch):
    """A DNS server played by the test: ``resolver.answers`` is a list of address lists, one per
    lookup in turn (the last one repeats); ``resolver.lookups`` counts them."""

    class Resolver:
        answers: list[list[str]] = []
        lookups = 0

        def __call__(self, host, port, *args, **kwargs):
            answer = self.answers[min(self.lookups, len(self.answers) - 1)]
            self.lookups += 1
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in answer
            ]

    fake = Resolver()
    monkeypatch.setattr(webhook_targets, "getaddrinfo", fake)
    return fake


def post(url, timeout=3.0):
    return webhook_targets.post(url, content=b"{}", headers={}, timeout=timeout)


REFUSED = {
    "127.0.0.1": "loopback address",
    "127.255.0.9": "loopback address",
    "::1": "loopback address",
    "169.254.169.254": "link-local address",
    "fe80::1": "link-local address",
    "10.0.0.5": "private address",
    "172.16.3.4": "private address",
    "192.168.1.1": "private address",
    "fc00::1": "private address",
    "fd12:3456::1": "private address",
    "100.64.0.1": "shared (carrier-grade NAT) address",
    "0.0.0.0": "unspecified address",
    "::": "unspecified address",
    "224.0.0.1": "multicast address",
    "ff02::1": "multicast address",
    "240.0.0.1": "reserved address",
    "255.255.255.255": "reserved address",
    "192.0.2.10": "private address",  # documentation (TEST-NET-1)
    "198.18.0.1": "private address",  # benchmarking
    "::ffff:127.0.0.1": "IPv4-mapped loopback address",
    "::ffff:169.254.169.254": "IPv4-mapped link-local address",
    "::ffff:10.1.2.3": "IPv4-mapped private address",
    "2002:7f00:1::": "IPv4-mapped loopback address",  # 6to4 of 127.0.0.1
    "64:ff9b::7f00:1": "NAT64 (translated) address",
}


@pytest.mark.parametrize("address", sorted(REFUSED))
def test_internal_addresses_are_refused_and_named(address):
    assert refusal(ipaddress.ip_address(address)) == REFUSED[address]


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "::ffff:1.1.1.1"]
)
def test_public_addresses_are_targets(address):
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://127.0.0.1:5432/", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
        ("http://[::1]:6379/", "::1 is a loopback address"),
        ("https://localhost/hook", "localhost resolves to a loopback address"),
        ("http://2130706433/", "2130706433 resolves to a loopback address"),  # 127.0.0.1 as one int
        ("ftp://example.com/", "starts with https:// or http://"),
    ],
)
def test_the_save_check_refuses_internal_targets_with_a_clear_message(url, says):
    with pytest.raises(TargetRefused) as refused:
        webhook_targets.check_url(url)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://169.254.169.254:{port}/latest",
        "http://10.9.9.9:{port}/",
        "http://[::1]:{port}/",
        "http://localhost:{port}/hook",
    ],
)
def test_a_connection_to_an_internal_target_is_refused_before_it_is_made(url, receiver):
    with pytest.raises(TargetRefused):
        post(url.format(port=receiver.port))
    assert receiver.hosts == []  # nothing reached the receiver on 127.0.0.1


def test_dns_rebinding_passes_the_save_check_but_not_the_connect(resolver, receiver):
    # the first answer is public (the save check), the next one loopback (the connect)
    resolver.answers = [["93.184.215.14"], ["127.0.0.1"]]
    url = f"http://rebind.example:{receiver.port}/hook"

    webhook_targets.check_url(url)  # saved: the name looked public then
    with pytest.raises(TargetRefused) as refused:
        post(url)

    assert refused.value.reason == "loopback address"
    assert resolver.lookups == 2 and receiver.hosts == []


def test_every_address_of_a_name_is_checked(resolver, receiver):
    resolver.answers = [["93.184.215.14", "127.0.0.1"]]
    with pytest.raises(TargetRefused):
        webhook_targets.check_url(f"http://mixed.example:{receiver.port}/")
    with pytest.raises(TargetRefused):
        post(f"http://mixed.example:{receiver.port}/")
    assert receiver.hosts == []


def test_the_connection_goes_to_the_checked_address_and_says_the_urls_host(
    resolver, receiver, settings
):
    # a name no real DNS knows: the request can only have reached the receiver through the
    # address the check resolved (one lookup), while Host still names the URL's host
    settings.FLOWDESK_WEBHOOK_ALLOW_HOSTS = "hooks.intranet.example"
    resolver.answers = [["127.0.0.1"]]

    assert post(f"http://hooks.intranet.example:{receiver.port}/hook") == 204

    assert resolver.lookups == 1
    assert receiver.hosts == [f"hooks.intranet.example:{receiver.port}"]


def test_the_allow_list_opens_only_the_hosts_it_names(receiver, settings):
    settings.FLOWDESK_WEBHOOK_ALLOW_HOSTS = " 127.0.0.1 , [::1]"
    webhook_targets.check_url(f"http://127.0.0.1:{receiver.port}/")
    webhook_targets.check_url("http://[0:0::1]:9/")  # the same address, written otherwise
    assert post(f"http://127.0.0.1:{receiver.port}/") == 204
    with pytest.raises(TargetRefused):  # localhost is 127.0.0.1 too, but it is not named
        webhook_targets.check_url(f"http://localhost:{receiver.port}/")
    with pytest.raises(TargetRefused):
        webhook_targets.check_url("http://10.0.0.1/")


def test_a_name_that_does_not_resolve_is_saved_and_fails_at_connect(monkeypatch):
    def nothing(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(webhook_targets, "getaddrinfo", nothing)
    webhook_targets.check_url("https://not-yet.example/hook")
    with pytest.raises(webhook_targets.Unresolvable):
        post("https://not-yet.example/hook")


def test_a_receiver_dripping_its_answer_is_cut_at_the_deadline(settings):
    # Each byte comes well within a read timeout: only the one deadline ends the attempt.
    settings.FLOWDESK_WEBHOOK_ALLOW_HOSTS = "127.0.0.1"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def drip():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        with pytest.raises(webhook_targets.httpx.TimeoutException):
            post(f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=1.0)
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_a_lookup_that_hangs_ends_with_the_deadline(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(3)
        return []

    monkeypatch.setattr(webhook_targets, "getaddrinfo", hang)
    with pytest.raises(webhook_targets.Unresolvable) as failed:
        webhook_targets.resolve("slow-dns.example", 443, timeout=0.3)
    assert "took over" in str(failed.value)
