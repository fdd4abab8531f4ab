// A delay line on NFQUEUE, for bench/path-bench.sh: this kernel has no netem, so a router
// namespace queues the packets it forwards here, and this program holds each one DELAY_MS
// (from the moment it reads the packet's metadata) and then lets it go on. Every packet gets
// the same delay, so releasing in arrival order keeps every flow in order, and one batch
// verdict ("accept every id up to N") releases all that are due at once.
//
//   delayline QUEUE DELAY_MS [STATS_FILE] [QUANTUM_US]
//
// Release quantum (QUANTUM_US > 0): the line wakes on a grid of that period and releases
// everything due by then, instead of waking for every packet that arrives while it holds some.
// Each packet's due time is then taken from the kernel's timestamp of its queueing
// (NFQA_TIMESTAMP; the line enables the kernel's receive timestamps with SO_TIMESTAMP on a UDP
// socket it keeps open), so a packet read late is not held late: it leaves at most one quantum
// after its due time. A real link does no per-packet work on the hosts' CPUs; on this shared
// machine every wake-up of the line is taken from the sender (an agent's thread wakes it
// with each segment it sends), so fewer wake-ups make the path cost less of what it measures.
// QUANTUM_US = 0: wake per arrival, due = read time + delay (the line before the quantum).
//
// Runs until SIGTERM/SIGINT. On SIGUSR1, and at the end, appends one JSON line of counters
// since the last line to STATS_FILE (default stdout): packets (queued skbs), batches (verdict
// messages), max_held (packets held at once), late_us_max / late_us_mean (release time minus
// due time; a packet may go up to 20 µs early, counted as 0), verdict_us_mean / verdict_us_max
// (time in the verdict call, which reinjects the packets in this thread: the rest of the
// forward path, the qdisc and often the receiver's softirq run there), enobufs (metadata the
// socket dropped: those packets are released with the next batch, late, never early), seconds.
// Only metadata is copied to user space (NFQNL_COPY_META), and GSO packets are queued whole
// (NFQA_CFG_F_GSO), so the cost is per queued skb, not per byte.
// Build: gcc -O2 -o delayline bench/delayline.c -lnetfilter_queue
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// The kernel's queue limit and ours: a ring of (id, due) pairs. 65536 skbs is far more than a
// 1 Gbit/s, 10 ms line holds (about 850 full-size packets, fewer GSO ones).
#define RING 65536
#define RECV_BATCH 64
#define BUF 1024

static uint32_t ring_id[RING];
static int64_t ring_due[RING];
static uint32_t head, tail; // held = tail - head
static int64_t now_ns, delay_ns;
static uint64_t packets, batches, enobufs, late_sum_ns, max_held, stamped, wakeups;
static int64_t late_max_ns, verdict_ns, verdict_max_ns;
static volatile sig_atomic_t stop, dump;
static int use_stamps;

// CLOCK_REALTIME: the clock of the kernel's queueing timestamps (ktime_get_real).
static int64_t now_real_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void on_signal(int sig) {
  if (sig == SIGUSR1) dump = 1;
  else stop = 1;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *m, struct nfq_data *nfa, void *data) {
  (void)m;
  (void)data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  uint32_t id = ntohl(ph->packet_id);
  // Queued at: the kernel's stamp when there is one (with a quantum the line reads late).
  int64_t at = now_ns;
  struct timeval tv;
  if (use_stamps && nfq_get_timestamp(nfa, &tv) == 0) {
    int64_t k = (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
    if (k <= now_ns) at = k;
    stamped++;
  }
  if (tail - head == RING) {
    // Cannot happen with the kernel's maxlen = RING; if it does, release the oldest now.
    nfq_set_verdict_batch(qh, ring_id[head % RING], NF_ACCEPT);
    head++;
    batches++;
  }
  ring_id[tail % RING] = id;
  ring_due[tail % RING] = at + delay_ns;
  tail++;
  packets++;
  if (tail - head > max_held) max_held = tail - head;
  return 0;
}

// Releases every packet that is due (within 20 µs) with one batch verdict.
static void release_due(struct nfq_q_handle *qh) {
  if (head == tail) return;
  int64_t t = now_real_ns();
  uint32_t last = head;
  if (ring_due[head % RING] > t + 20000) return;
  while (last != tail && ring_due[last % RING] <= t + 20000) {
    int64_t late = t - ring_due[last % RING];
    if (late > 0) {
      late_sum_ns += (uint64_t)late;
      if (late > late_max_ns) late_max_ns = late;
    }
    last++;
  }
  if (nfq_set_verdict_batch(qh, ring_id[(last - 1) % RING], NF_ACCEPT) < 0) perror("delayline: verdict");
  // The verdict call reinjects the packets in this thread's context: time it.
  int64_t spent = now_real_ns() - t;
  verdict_ns += spent;
  if (spent > verdict_max_ns) verdict_max_ns = spent;
  head = last;
  batches++;
}

// Appends one JSON line of the counters since the last one, and starts them again.
static void write_stats(const char *file, int64_t since) {
  FILE *out = file ? fopen(file, "a") : stdout;
  if (!out) { perror("delayline: stats file"); out = stdout; }
  fprintf(out,
          "{\"packets\":%llu,\"batches\":%llu,\"max_held\":%llu,\"late_us_max\":%.1f,\"late_us_mean\":%.1f,"
          "\"verdict_us_mean\":%.1f,\"verdict_us_max\":%.1f,\"enobufs\":%llu,\"stamped\":%llu,\"wakeups\":%llu,\"seconds\":%.1f}\n",
          (unsigned long long)packets, (unsigned long long)batches, (unsigned long long)max_held, late_max_ns / 1e3,
          packets ? late_sum_ns / 1e3 / packets : 0.0, batches ? verdict_ns / 1e3 / batches : 0.0, verdict_max_ns / 1e3,
          (unsigned long long)enobufs, (unsigned long long)stamped, (unsigned long long)wakeups, (now_real_ns() - since) / 1e9);
  if (out != stdout) fclose(out); else fflush(out);
  packets = batches = enobufs = late_sum_ns = max_held = stamped = wakeups = 0;
  late_max_ns = verdict_ns = verdict_max_ns = 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s QUEUE DELAY_MS [STATS_FILE] [QUANTUM_US]\n", argv[0]);
    return 2;
  }
  int queue = atoi(argv[1]);
  double delay_ms = atof(argv[2]);
  if (queue < 0 || queue > 65535 || delay_ms < 0 || delay_ms > 10000) {
    fprintf(stderr, "delayline: bad QUEUE or DELAY_MS\n");
    return 2;
  }
  delay_ns = (int64_t)(delay_ms * 1e6);
  const char *stats_file = argc > 3 && argv[3][0] ? argv[3] : NULL;
  double quantum_us = argc > 4 ? atof(argv[4]) : 0;
  if (quantum_us < 0 || quantum_us > 10000) {
    fprintf(stderr, "delayline: bad QUANTUM_US\n");
    return 2;
  }
  int64_t quantum_ns = (int64_t)(quantum_us * 1e3);
  if (quantum_ns > 0) {
    // netstamp_needed: from now on the kernel stamps what it queues to us (NFQA_TIMESTAMP).
    int ts = socket(AF_INET, SOCK_DGRAM, 0), on = 1;
    if (ts < 0 || setsockopt(ts, SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on) < 0) {
      perror("delayline: SO_TIMESTAMP");
      return 1;
    }
    use_stamps = 1; // ts stays open: the stamps last as long as the line
  }

  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  // Wake-ups on time: the default 50 µs timer slack is fine, but ask for less.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

  struct nfq_handle *h = nfq_open();
  if (!h) { perror("delayline: nfq_open"); return 1; }
  struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
  if (!qh) { perror("delayline: nfq_create_queue"); return 1; }
  if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) { perror("delayline: nfq_set_mode"); return 1; }
  if (nfq_set_queue_maxlen(qh, RING) < 0) { perror("delayline: nfq_set_queue_maxlen"); return 1; }
  if (nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0) { perror("delayline: NFQA_CFG_F_GSO"); return 1; }
  int fd = nfq_fd(h);
  // Root: room for a burst of metadata messages while we sleep toward the next due time.
  int rcvbuf = 64 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) perror("delayline: SO_RCVBUFFORCE");
  // The socket must not block: each wake-up reads what is there, then goes back to releasing.
  static char bufs[RECV_BATCH][BUF];
  struct iovec iov[RECV_BATCH];
  struct mmsghdr msgs[RECV_BATCH];
  for (int i = 0; i < RECV_BATCH; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = BUF;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  fprintf(stderr, "delayline: queue %d, delay %.3f ms\n", queue, delay_ms);
  int64_t t0 = now_real_ns();

  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  while (!stop) {
    if (dump) {
      dump = 0;
      write_stats(stats_file, t0);
      t0 = now_real_ns();
    }
    release_due(qh);
    int r;
    if (quantum_ns > 0 && head != tail) {
      // Holding packets: sleep to the first point of the grid at or after the oldest one's due
      // time, without watching the socket (what arrives meanwhile carries its stamp).
      int64_t wake = (ring_due[head % RING] + quantum_ns - 1) / quantum_ns * quantum_ns;
      struct timespec at = {wake / 1000000000, wake % 1000000000};
      if (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL) == EINTR) continue;
      wakeups++;
      r = 1;
    } else {
      struct timespec to = {1, 0};
      if (head != tail) {
        int64_t wait = ring_due[head % RING] - now_real_ns();
        if (wait < 0) wait = 0;
        to.tv_sec = wait / 1000000000;
        to.tv_nsec = wait % 1000000000;
      }
      r = ppoll(&pfd, 1, &to, NULL);
      if (r < 0) {
        if (errno == EINTR) continue;
        perror("delayline: ppoll");
        break;
      }
      wakeups++;
      if (r == 0) continue;
    }
    // Bounded reading (at most 16 batches) so that due packets are not held behind a burst;
    // with a quantum, read all that waits (each packet's stamp, not the reading, sets its due).
    for (int round = 0; quantum_ns > 0 || round < 16; round++) {
      int n = recvmmsg(fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
      if (n < 0) {
        if (errno == ENOBUFS) { enobufs++; continue; }
        if (errno == EAGAIN || errno == EINTR) break;
        perror("delayline: recvmmsg");
        stop = 1;
        break;
      }
      now_ns = now_real_ns();
      for (int i = 0; i < n; i++) nfq_handle_packet(h, bufs[i], (int)msgs[i].msg_len);
      if (n < RECV_BATCH) break;
    }
  }
  // Whatever is still held goes on now (the namespace may be about to disappear anyway).
  if (head != tail) nfq_set_verdict_batch(qh, ring_id[(tail - 1) % RING], NF_ACCEPT);
  write_stats(stats_file, t0);
  nfq_destroy_queue(qh);
  nfq_close(h);
  return 0;
}
