"""gdb.ExitWatch against a stand-in for QEMU's QMP socket: it ends QEMU (`quit`) when the guest
asked to end (SHUTDOWN, reason guest-shutdown: QEMU 10.0 pauses there under -action
shutdown=pause, where 7.2 exits by itself), and leaves a triple fault (guest-reset) paused for
GDB. The end-to-end check is test_gdb_cli's `./pagoda run --gdb` test on a QEMU 10 machine."""
import json
import socket
import threading

from pagoda import gdb


class Running:
    """A QEMU that has not ended (what ExitWatch.start polls while it waits for the socket)."""
    returncode = None

    def poll(self):
        return None


def commands_after(tmp_path, events):
    """Starts an ExitWatch on a QMP stand-in that greets, answers qmp_capabilities, sends
    @p events and then ends its side; returns every command the watch sent, in order."""
    path = str(tmp_path / "qmp.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = []

    def serve():
        conn, _ = server.accept()
        with conn, conn.makefile("rw", encoding="utf-8", newline="\n") as stream:
            stream.write(json.dumps({"QMP": {"version": {}, "capabilities": []}}) + "\n")
            stream.flush()
            received.append(json.loads(stream.readline())["execute"])
            stream.write(json.dumps({"return": {}}) + "\n")
            for event in events:                   # (text as it is: a line that is not JSON)
                stream.write((event if isinstance(event, str) else json.dumps(event)) + "\n")
            stream.flush()
            conn.shutdown(socket.SHUT_WR)          # no more events: the watch's loop ends
            for line in stream:                    # what it sent, up to its own end
                received.append(json.loads(line)["execute"])

    serving = threading.Thread(target=serve)
    serving.start()
    watch = gdb.ExitWatch(path)
    assert watch.qemu_args() == ("-qmp", f"unix:{path},server=on,wait=off")
    watch.start(Running())
    watch.thread.join()
    serving.join()
    server.close()
    return received


def shutdown(reason):
    return {"event": "SHUTDOWN", "data": {"guest": True, "reason": reason}}


def test_the_guest_s_own_exit_ends_qemu(tmp_path):
    assert commands_after(tmp_path, [{"event": "RESUME"}, shutdown("guest-shutdown"), {"event": "STOP"}]) == \
        ["qmp_capabilities", "quit"]


def test_a_triple_fault_stays_paused_for_gdb(tmp_path):
    assert commands_after(tmp_path, [{"event": "RESUME"}, shutdown("guest-reset"), {"event": "STOP"}]) == \
        ["qmp_capabilities"]


def test_only_the_exit_counts_among_others(tmp_path):
    assert commands_after(tmp_path, [shutdown("guest-reset"), shutdown("host-qmp-quit"), "not json", "[1]",
                                     shutdown("guest-shutdown")]) == ["qmp_capabilities", "quit"]


def test_a_socket_bound_but_not_yet_listening_is_waited_for(tmp_path):
    """QEMU binds its socket before it listens: a connection in between is refused, and the
    watch tries again until the socket listens (under load the gap was long enough to lose a
    `pagoda gdb` replay to 'Connection refused')."""
    path = str(tmp_path / "late.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    refused = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        refused.connect(path)
        raise AssertionError("a bound socket that does not listen accepted a connection")
    except ConnectionRefusedError:
        pass
    finally:
        refused.close()
    tried = threading.Event()
    real_sleep = gdb.time.sleep

    def listen_later():
        tried.wait()
        server.listen(1)

    def sleep(seconds):       # the first retry's pause is where the socket starts listening
        tried.set()
        real_sleep(seconds)

    listener = threading.Thread(target=listen_later)
    listener.start()
    gdb.time.sleep, saved = sleep, gdb.time.sleep
    try:
        conn = gdb.connect_when_listening(path, Running())
        conn.close()
    finally:
        gdb.time.sleep = saved
        listener.join()
        server.close()
    assert tried.is_set()
