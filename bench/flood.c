// A TCP segment flood for bench/flood-bench.sh and the flood e2e test: IPv4 segments, half
// (by default) without any option ("unlabelled") and half with a compat label whose MAC is
// random ("bad MAC"), random source ports, sent with sendmmsg on an AF_PACKET socket (the
// sender's own stack and netfilter are bypassed), paced to a target rate.
//
//   flood IFACE DST_MAC SRC_IP DST_IP DPORT RATE_PPS SECONDS [LABELLED_PERCENT=50] [PAYLOAD=64] [EXID=0x4677]
//
// EXID other than 0x4677 sends option 253 with another experiment ID (unlabelled to labelwall,
// but the kernel's `--tcp-option 253` cannot tell).
// RATE_PPS 0 means as fast as possible. Prints one JSON line: {"sent":N,"seconds":S,"pps":R}.
// Build: gcc -O2 -o flood bench/flood.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define POOL 4096
#define BATCH 64

static uint16_t csum(const void *data, size_t len, uint32_t sum) {
  const uint8_t *p = data;
  while (len > 1) { sum += (p[0] << 8) | p[1]; p += 2; len -= 2; }
  if (len) sum += p[0] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 8) {
    fprintf(stderr, "usage: %s IFACE DST_MAC SRC_IP DST_IP DPORT RATE_PPS SECONDS [LABELLED_PERCENT] [PAYLOAD] [EXID]\n", argv[0]);
    return 2;
  }
  const char *ifname = argv[1];
  unsigned mac[6];
  if (sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6) {
    fprintf(stderr, "flood: bad MAC %s\n", argv[2]);
    return 2;
  }
  struct in_addr src, dst;
  if (inet_pton(AF_INET, argv[3], &src) != 1 || inet_pton(AF_INET, argv[4], &dst) != 1) {
    fprintf(stderr, "flood: bad IPv4 address\n");
    return 2;
  }
  int dport = atoi(argv[5]);
  double rate = atof(argv[6]), secs = atof(argv[7]);
  int labelled = argc > 8 ? atoi(argv[8]) : 50;
  int payload = argc > 9 ? atoi(argv[9]) : 64;
  if (payload < 0 || payload > 1400) payload = 64;
  unsigned exid = argc > 10 ? (unsigned)strtoul(argv[10], NULL, 0) : 0x4677;

  int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
  if (fd < 0) { perror("flood: socket"); return 1; }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  struct sockaddr_ll sll = {0};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_IP);
  sll.sll_ifindex = if_nametoindex(ifname);
  if (!sll.sll_ifindex) { fprintf(stderr, "flood: no interface %s\n", ifname); return 1; }
  sll.sll_halen = 6;
  for (int i = 0; i < 6; i++) sll.sll_addr[i] = mac[i];

  static uint8_t pkts[POOL][1500];
  static size_t lens[POOL];
  srandom(getpid());
  for (int i = 0; i < POOL; i++) {
    uint8_t *ip = pkts[i];
    int lab = (random() % 100) < labelled;
    int thl = lab ? 60 : 20;
    size_t len = 20 + thl + payload;
    memset(ip, 0, len);
    ip[0] = 0x45; ip[2] = len >> 8; ip[3] = len & 0xff;
    ip[4] = random() & 0xff; ip[5] = random() & 0xff;
    ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
    memcpy(ip + 12, &src, 4); memcpy(ip + 16, &dst, 4);
    uint16_t c = csum(ip, 20, 0); ip[10] = c >> 8; ip[11] = c & 0xff;
    uint8_t *t = ip + 20;
    uint16_t sport = 1024 + random() % 60000;
    t[0] = sport >> 8; t[1] = sport & 0xff; t[2] = dport >> 8; t[3] = dport & 0xff;
    uint32_t seq = random(), ack = random();
    memcpy(t + 4, &seq, 4); memcpy(t + 8, &ack, 4);
    t[12] = (thl / 4) << 4; t[13] = 0x18; /* PSH ACK */ t[14] = 0xff; t[15] = 0xff;
    if (lab) {
      uint8_t *o = t + 20;
      o[0] = 253; o[1] = 40; o[2] = exid >> 8; o[3] = exid & 0xff;  /* ExID, reserved 0, MAC random */
      for (int k = 8; k < 40; k++) o[k] = random() & 0xff;
    }
    for (int k = 0; k < payload; k++) t[thl + k] = random() & 0xff;
    /* TCP checksum over the pseudo-header. */
    uint8_t ph[12];
    memcpy(ph, &src, 4); memcpy(ph + 4, &dst, 4); ph[8] = 0; ph[9] = 6;
    ph[10] = (thl + payload) >> 8; ph[11] = (thl + payload) & 0xff;
    uint32_t s = 0;
    for (int k = 0; k < 12; k += 2) s += (ph[k] << 8) | ph[k + 1];
    c = csum(t, thl + payload, s); t[16] = c >> 8; t[17] = c & 0xff;
    lens[i] = len;
  }

  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    msgs[i].msg_hdr.msg_name = &sll;
    msgs[i].msg_hdr.msg_namelen = sizeof sll;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  unsigned long long sent = 0, errors = 0;
  size_t next = 0;
  double start = now(), end = start + secs, t;
  while ((t = now()) < end) {
    if (rate > 0 && sent > (t - start) * rate) {
      struct timespec ts = {0, 50000};
      nanosleep(&ts, NULL);
      continue;
    }
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = pkts[next];
      iov[i].iov_len = lens[next];
      next = (next + 1) % POOL;
    }
    int n = sendmmsg(fd, msgs, BATCH, 0);
    if (n < 0) {
      if (errno == ENOBUFS || errno == EAGAIN) { errors++; continue; }
      perror("flood: sendmmsg");
      return 1;
    }
    sent += n;
  }
  double el = now() - start;
  printf("{\"sent\":%llu,\"seconds\":%.3f,\"pps\":%.0f,\"errors\":%llu}\n", sent, el, sent / el, errors);
  return 0;
}
