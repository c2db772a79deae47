/* The SFU's per-packet path, compiled: one datagram in, its copies out.

     publisher --SRTP--> Leg.datagram_received (decrypt)         [the publisher's Leg]
        --> Inbound (statistics, NACK trigger, frame bytes)      [one per Publication]
        --> Outbound (rewrite, send history)                     [one per Subscription]
        --> Leg send (encrypt, send on the connected socket)     [the subscriber's Leg]

   Everything that happens per packet in steady state is here; every decision that is not
   per packet stays in Python and is reached through a hook: an SSRC nobody routed yet
   (Participant.on_rtp), a gap or reordering (Publication: NACK list), the end of a frame
   (Publication: bandwidth estimate), a subscription that is not ready (Subscription: keyframe
   gate, re-basing after a switch), a header-extension layout not seen before
   (rtpheader.ExtensionRewrite.plan), a route that changed (transport.py). In Python the same
   path cost 25 us per forwarded packet under load, about 15 of them in the interpreter.

   SRTP is libsrtp's, called through the function pointers and session contexts of pylibsrtp's
   own binding (set_srtp_functions, Leg.set_srtp): one libsrtp, one set of keys. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

#define MAX_SRTP_TAG 16        /* AEAD_AES_128/256_GCM (AES_CM_128_HMAC_SHA1_80: 10) */
#define MTU 1500              /* the largest datagram received: any RTP packet within it is sent */
#define MAX_RTCP_TRAILER 148  /* pylibsrtp.SRTP_MAX_SRTCP_TRAILER_LEN */
#define SIG_MAX 64            /* longest extension layout signature a plan is cached under */
#define PLANS 4               /* cached layouts per Outbound (a sender keeps one or two) */
#define PLAN_OPS 48

typedef int (*srtp_fn)(void *ctx, void *buf, int *len);
static srtp_fn srtp_protect, srtp_protect_rtcp, srtp_unprotect, srtp_unprotect_rtcp;

static PyObject *k_rtx_padding, *k_rtx_unrepaired, *k_malformed_feedback;
static PyObject *k_malformed_rtp, *k_payload_type, *k_sequence_jump, *k_too_long, *k_temporal_late, *k_malformed_vp8, *k_duplicate, *k_before_restart, *k_srtp_rejected, *k_srtcp_rejected,
    *k_not_connected, *k_send_error, *k_record, *k_one, *k_where_rtp, *k_where_rtcp,
    *k_where_forward, *k_where_nack, *k_where_frame, *k_where_restart, *k_where_codec,
    *k_where_send, *k_recv_error, *k_oversize;

static double monotonic(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Arrival times on the receive path are microseconds of CLOCK_MONOTONIC: the kernel's receive
   time of the datagram where read_ready has it (see arrival_clock), else the time it is
   handled. */
static int64_t monotonic_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int64_t timespec_us(const struct timespec *t) {
    return (int64_t)t->tv_sec * 1000000 + t->tv_nsec / 1000;
}

/* reason -> count in a Python dict (the counters the metrics read). Leaves a pending
   exception (the one being counted) as it found it. */
static void count(PyObject *dropped, PyObject *reason) {
    if (dropped == NULL || !PyDict_Check(dropped)) return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *old = PyDict_GetItemWithError(dropped, reason);
    long long n = old ? PyLong_AsLongLong(old) : 0;
    PyObject *new = PyErr_Occurred() ? NULL : PyLong_FromLongLong(n + 1);
    if (new == NULL || PyDict_SetItem(dropped, reason, new) < 0) PyErr_Clear();
    Py_XDECREF(new);
    PyErr_Restore(type, value, tb);
}

/* The pending exception goes to faults.record(where, exc): counted, logged once per type. */
static void fault(PyObject *faults, PyObject *where) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) return;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) PyException_SetTraceback(value, tb);
    PyObject *r = NULL;
    if (faults != NULL && faults != Py_None)
        r = PyObject_CallMethodObjArgs(faults, k_record, where, value, NULL);
    else
        PyErr_Restore(Py_NewRef(type), Py_NewRef(value), Py_XNewRef(tb));
    if (r == NULL) PyErr_WriteUnraisable(where);
    Py_XDECREF(r);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* ---- VP8 payload descriptor (RFC 7741 4.2) -------------------------------------------------- */

typedef struct {
    Py_ssize_t pid_at, tl0_at; /* offsets of the PictureID and TL0PICIDX in the payload; -1: absent */
    int pid;                   /* the PictureID; -1: absent */
    char wide;                 /* a 15-bit PictureID */
    char tid;                  /* the temporal layer (TID); -1: none carried */
    char sync;                 /* the Y bit: a decoder of the layers below can take this one up */
    char start;                /* it starts a frame (S set, partition 0) */
    char media;                /* it carries VP8 (not padding alone) */
} Vp8;

/* What the descriptor of the VP8 payload `p` (n bytes, its padding left out) says: 0, or -1
   when it is malformed: a field its X/I/L/T/K bits announce lies beyond the payload, or no
   VP8 octet follows it. aiortc's depacketizer raises on such a packet and libwebrtc's drops it
   ("Empty vp8 payload"), so a subscriber could never use it; an empty payload (padding) has no
   descriptor and is not malformed. Parsed once per packet received. */
static int vp8_parse(const uint8_t *p, Py_ssize_t n, Vp8 *v) {
    v->pid_at = v->tl0_at = v->pid = -1;
    v->wide = v->sync = 0;
    v->tid = -1;
    v->start = v->media = 0;
    if (n == 0) return 0;
    v->media = 1;
    v->start = (p[0] & 0x10) && (p[0] & 0x0F) == 0;
    Py_ssize_t pos = 1;
    if (p[0] & 0x80) {
        if (n < 2) return -1;
        uint8_t x = p[1];
        pos = 2;
        if (x & 0x80) {
            if (n <= pos) return -1;
            v->wide = (p[pos] & 0x80) != 0;
            if (pos + (v->wide ? 2 : 1) > n) return -1;
            v->pid_at = pos;
            v->pid = v->wide ? ((p[pos] & 0x7F) << 8 | p[pos + 1]) : p[pos];
            pos += v->wide ? 2 : 1;
        }
        if (x & 0x40) {
            if (n <= pos) return -1;
            v->tl0_at = pos++;
        }
        if (x & 0x30) { /* T and K share one octet */
            if (n <= pos) return -1;
            if (x & 0x20) {
                v->tid = (char)(p[pos] >> 6);
                v->sync = (p[pos] >> 5) & 1;
            }
            pos++;
        }
    }
    return pos < n ? 0 : -1;
}

/* ---- RTP header (RFC 3550, extensions RFC 8285): mirrors rtpheader.parse ------------------ */

typedef struct {
    uint8_t payload_type, marker, two_byte;
    uint16_t seq;
    uint32_t ts, ssrc;
    Py_ssize_t ext_offset, ext_end, payload_offset;
} Header;

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 0 when well formed; otherwise the reason, as rtpheader.parse raises MalformedRtp. */
static int parse(const uint8_t *d, Py_ssize_t size, Header *h) {
    if (size < 12 || d[0] >> 6 != 2) return -1;
    Py_ssize_t offset = 12 + 4 * (d[0] & 0x0F);
    h->payload_type = d[1] & 0x7F;
    h->marker = d[1] >> 7;
    h->seq = be16(d + 2);
    h->ts = be32(d + 4);
    h->ssrc = be32(d + 8);
    h->two_byte = 0;
    h->ext_offset = h->ext_end = 0;
    if (d[0] & 0x10) {
        if (size < offset + 4) return -1;
        uint16_t profile = be16(d + offset);
        Py_ssize_t pos = h->ext_offset = offset + 4;
        Py_ssize_t end = h->ext_end = pos + 4 * (Py_ssize_t)be16(d + offset + 2);
        if (size < end) return -1;
        if (profile == 0xBEDE) {
            while (pos < end) {
                uint8_t b = d[pos];
                if (b == 0) pos += 1;
                else if (b >> 4 == 15) break;
                else if ((pos += (b & 0x0F) + 2) > end) return -1;
            }
        } else if ((profile & 0xFFF0) == 0x1000) {
            h->two_byte = 1;
            while (pos < end) {
                if (d[pos] == 0) { pos += 1; continue; }
                if (pos + 2 > end || pos + 2 + d[pos + 1] > end) return -1;
                pos += 2 + d[pos + 1];
            }
        }
        offset = end;
    }
    if (offset > size) return -1;
    if ((d[0] & 0x20) && (size == offset || d[size - 1] == 0 || d[size - 1] > size - offset)) return -1;
    h->payload_offset = offset;
    return 0;
}

/* The value of the header extension element `id` (its length in *len), or NULL when absent. */
static const uint8_t *element(const uint8_t *d, const Header *h, int id, int *len) {
    Py_ssize_t pos = h->ext_offset, end = h->ext_end;
    if (!pos) return NULL;
    if (!h->two_byte) {
        if (be16(d + pos - 4) != 0xBEDE) return NULL;
        while (pos < end) {
            uint8_t b = d[pos];
            if (b == 0) { pos++; continue; }
            if (b >> 4 == 15) return NULL;
            if (b >> 4 == id) {
                *len = (b & 0x0F) + 1;
                return pos + 1 + *len <= end ? d + pos + 1 : NULL;
            }
            pos += (b & 0x0F) + 2;
        }
    } else {
        while (pos + 2 <= end) {
            if (d[pos] == 0) { pos++; continue; }
            if (d[pos] == id) {
                *len = d[pos + 1];
                return pos + 2 + *len <= end ? d + pos + 2 : NULL;
            }
            pos += 2 + d[pos + 1];
        }
    }
    return NULL;
}

/* vp8_parse of the payload of the RTP packet `d` (n bytes, `h` its parsed header), its
   padding left out: what a receiver takes for the payload once it has removed the padding. */
static int vp8_parse_packet(const uint8_t *d, Py_ssize_t n, const Header *h, Vp8 *v) {
    Py_ssize_t pad = (d[0] & 0x20) ? d[n - 1] : 0; /* parse() checked it fits */
    return vp8_parse(d + h->payload_offset, n - h->payload_offset - pad, v);
}

/* The element layout of a packet's extension block (where it starts and ends, its form and
   every element header and padding byte): equal signatures put the same elements at the same
   offsets, so one rewrite plan serves them all. -1 when too long to cache. A packet without
   an extension block has the signature of its header's length alone (an extension offset is
   never 0), planned only where the plan adds a transport-wide sequence number. */
static int signature(const uint8_t *d, const Header *h, uint8_t *sig) {
    Py_ssize_t pos = h->ext_offset, end = h->ext_end;
    int n = 0;
    sig[n++] = (uint8_t)pos;
    if (!pos) {
        sig[n++] = (uint8_t)h->payload_offset;
        return n;
    }
    sig[n++] = (uint8_t)((end - pos) >> 8);
    sig[n++] = (uint8_t)(end - pos);
    uint16_t profile = be16(d + pos - 4);
    if (profile == 0xBEDE) {
        sig[n++] = 1;
        while (pos < end) {
            if (n >= SIG_MAX) return -1;
            uint8_t b = sig[n++] = d[pos];
            if (b == 0) pos += 1;
            else if (b >> 4 == 15) break;
            else pos += (b & 0x0F) + 2;
        }
    } else if (h->two_byte) {
        sig[n++] = 2;
        while (pos < end) {
            if (n + 2 > SIG_MAX) return -1;
            if (d[pos] == 0) { sig[n++] = 0; pos += 1; continue; }
            sig[n++] = d[pos];
            sig[n++] = d[pos + 1];
            pos += 2 + d[pos + 1];
        }
    } else {
        sig[n++] = 3;
    }
    return n;
}

/* ---- header rewrite plans ------------------------------------------------------------------ */

/* A plan rebuilds the header up to the payload: a tuple whose items are (start, end) - copy
   those bytes of the incoming packet - or bytes - write them as they are - or, once at most,
   None: the 2-byte value of the transport-cc element, written as zeros here and stamped with
   the Leg's transport-wide sequence number as the packet is sent (leg_send). */
typedef struct {
    uint16_t start, len;
    const char *literal; /* NULL: copy from the packet */
} Op;

typedef struct {
    int siglen;
    uint8_t sig[SIG_MAX];
    int nops;
    Py_ssize_t out_len; /* bytes the plan writes */
    Py_ssize_t tcc_at;  /* where None put the transport-cc value in what it writes; 0: none */
    Op ops[PLAN_OPS];
    PyObject *owner; /* the tuple: keeps the literals alive */
} Plan;

/* Check and compile a plan for a packet whose header is `header_len` bytes. */
static int compile_plan(PyObject *plan, Py_ssize_t header_len, Plan *out) {
    if (!PyTuple_Check(plan)) {
        PyErr_SetString(PyExc_TypeError, "a rewrite plan is a tuple");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(plan);
    if (n > PLAN_OPS) {
        PyErr_SetString(PyExc_ValueError, "rewrite plan has too many steps");
        return -1;
    }
    Py_ssize_t total = 0, tcc_at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(plan, i);
        Op *op = &out->ops[i];
        if (item == Py_None) {
            if (tcc_at || total < 12) goto bad; /* one per packet, in the extension block */
            static const char placeholder[2];
            op->literal = placeholder;
            op->start = 0;
            op->len = 2;
            tcc_at = total;
        } else if (PyBytes_Check(item)) {
            op->literal = PyBytes_AS_STRING(item);
            op->start = 0;
            op->len = (uint16_t)PyBytes_GET_SIZE(item);
            if (PyBytes_GET_SIZE(item) > 0xFFFF) goto bad;
        } else if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
            Py_ssize_t s = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
            Py_ssize_t e = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 1));
            if (PyErr_Occurred()) return -1;
            if (s < 0 || e < s || e > header_len) goto bad;
            op->literal = NULL;
            op->start = (uint16_t)s;
            op->len = (uint16_t)(e - s);
        } else {
            goto bad;
        }
        total += op->len;
    }
    if (total < 12 || total > MTU) goto bad;
    out->nops = (int)n;
    out->out_len = total;
    out->tcc_at = tcc_at;
    Py_INCREF(plan);
    Py_XSETREF(out->owner, plan);
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "rewrite plan does not fit the packet");
    return -1;
}

static void run_plan(const Plan *plan, const uint8_t *in, uint8_t *out) {
    for (int i = 0; i < plan->nops; i++) {
        const Op *op = &plan->ops[i];
        memcpy(out, op->literal ? (const uint8_t *)op->literal : in + op->start, op->len);
        out += op->len;
    }
}

/* ---- Departures: what left on a subscriber's transport, by transport-wide sequence --------- */

/* A subscriber's transport that negotiated transport-wide congestion control
   (draft-holmer-rmcat-transport-wide-cc-extensions-01) gets a transport-wide sequence number
   in every RTP packet we send on it - forwarded media, resends, probe padding - stamped into
   the 2-byte value of its transport-cc element as the packet is sent (leg_send; the rewrite
   plan put the element there, or the resend found it). Each is recorded here: when it left
   (microseconds of CLOCK_MONOTONIC, taken just before sendmmsg/send), its size on the wire
   (bytes, after SRTP) and what it was. The subscriber's feedback (RTPFB FMT 15) names them by
   sequence number with their arrival times; Departures.feedback joins the two for the
   send-side delay-based estimator (estimator.py). */

/* Packets the ring holds. libwebrtc's receiver sends a feedback every 50-250 ms that reports
   the packets that arrived (or not) since its last one and never repeats them: a lost
   feedback's packets are never asked about again, so the ring needs to hold only the packets
   sent between the oldest one a feedback reports and that feedback's arrival - one feedback
   interval plus a round trip, about 100 packets for a 720p subscriber (a few hundred packets/s,
   100 ms + 150 ms). It starts at DEPARTURES_FIRST (1.3 s at 400 packets/s) and doubles, up to
   DEPARTURES_MAX (4 s at 1,000 packets/s), once a feedback spans more than half of it
   (departures_fit): a leg whose packet rate or round trip needs more gets more before it loses
   results. 8 bytes each: 4 KiB per transport to start with, allocated only where transport-cc
   was negotiated on a sending section. */
#define DEPARTURES_FIRST 512
#define DEPARTURES_MAX 4096
enum { SENT_MEDIA = 0, SENT_RESEND = 1, SENT_PADDING = 2 }; /* Departure.kind */
enum { UNREPORTED = 0, REPORTED_LOST = 1, REPORTED_RECEIVED = 2 };

typedef struct {
    uint32_t sent;    /* when it was handed to the socket: microseconds of CLOCK_MONOTONIC after
                         the Departures' epoch, modulo 2^32 (it wraps every 71.6 minutes; read
                         back against the newest departure by departures_sent_us) */
    uint16_t size;    /* bytes of the datagram (SRTP included) */
    uint8_t kind;     /* SENT_* */
    uint8_t reported; /* what a feedback delivered of it so far: a packet is delivered once
                         received, and once lost at most before that */
} Departure;

typedef struct {
    PyObject_HEAD
    int ext_id;          /* the transport-cc extension's id on this transport (RFC 8285) */
    int64_t next;        /* the next transport-wide sequence number, unwrapped (the wire has
                            its low 16 bits); the ring holds next - size .. next - 1 */
    int64_t reference;   /* the newest reference time of a feedback, unwrapped (64 ms units) */
    char referenced;     /* a feedback set reference */
    int last_count;      /* the feedback packet count of the last feedback; -1: none */
    PyObject *dropped;   /* reason -> count (the participant's) */
    long long feedbacks, reported_lost, reported_received, malformed, duplicates;
    int64_t epoch_us;    /* monotonic_us that Departure.sent counts from */
    int64_t newest_us;   /* the latest departure time recorded (monotonic_us; epoch_us at first) */
    int64_t size;        /* packets the ring holds: a power of two; 0 once released */
    Departure *ring;     /* PyMem: tracemalloc sees it; NULL once released */
} Departures;

/* Writes the next transport-wide sequence number at `at` (the element's value); returns it. */
static int64_t departures_stamp(Departures *d, uint8_t *at) {
    at[0] = (uint8_t)(d->next >> 8);
    at[1] = (uint8_t)d->next;
    return d->next++;
}

/* The departure time of `seq` (in the ring): `sent_us` monotonic_us. */
static void departures_time(Departures *d, int64_t seq, int64_t sent_us) {
    d->ring[seq & (d->size - 1)].sent = (uint32_t)(sent_us - d->epoch_us);
    if (sent_us > d->newest_us) d->newest_us = sent_us;
}

/* monotonic_us of a departure: what its 32-bit offset is once unwrapped against the newest
   departure (right for any departure less than 71.6 minutes older than that one: the ring
   holds seconds). */
static int64_t departures_sent_us(const Departures *d, const Departure *e) {
    return d->newest_us - (uint32_t)((uint32_t)(d->newest_us - d->epoch_us) - e->sent);
}

/* `sent_us` 0: timed later (departures_time, at the flush of queued sends). */
static void departures_record(Departures *d, int64_t seq, int size, int kind, int64_t sent_us) {
    Departure *e = &d->ring[seq & (d->size - 1)];
    e->size = (uint16_t)size;
    e->kind = (uint8_t)kind;
    e->reported = UNREPORTED;
    if (sent_us) departures_time(d, seq, sent_us);
}

/* ---- Leg: one participant's connection (SRTP both ways, the socket) ----------------------- */

typedef struct {
    PyObject_HEAD
    void *rx, *tx;          /* srtp_t of the pylibsrtp sessions in `sessions` */
    PyObject *sessions;     /* keeps the srtp_t alive */
    PyObject *routes;       /* dict: SSRC -> Inbound */
    PyObject *on_rtp;       /* (plain) for an SSRC not in routes */
    PyObject *on_rtcp;      /* (plain, arrival us: monotonic_us) */
    PyObject *queued;       /* (data, addr): what is not SRTP (DTLS, STUN) */
    PyObject *send_queued;  /* (protected): when the socket is full or there is none */
    PyObject *reroute;      /* (): the ICE pair changed: set fd / send_queued / pair again */
    PyObject *nominated;    /* aioice's nominated pairs by component */
    PyObject *pair;         /* the pair fd and send_queued belong to */
    PyObject *dropped;
    PyObject *faults;
    PyObject *arrivals;     /* Arrivals, or NULL: transport-cc not negotiated */
    Departures *departures; /* or NULL: no sending section negotiated transport-cc */
    int fd;                 /* a socket connected to the remote, or -1 */
    int rfd;                /* the socket read_ready reads (batched), or -1 */
    char connected;          /* DTLS is up */
    long long packets_sent;
    long long read_calls, datagrams_read; /* read_ready wake-ups and what they brought */
    long long unstamped;    /* of datagrams_read, those without a kernel receive time */
    int64_t last_arrival_us; /* the arrival read_ready gave the last datagram (monotonic_us) */
} Leg;

static PyTypeObject LegType, InboundType, OutboundType, ArrivalsType, DeparturesType;

/* The three types are garbage-collected (their hooks point back at the Python objects that own
   them) and are built the same way: tp_clear releases everything, so one dealloc serves. */
static void gc_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    Py_TYPE(self)->tp_clear(self);
    Py_TYPE(self)->tp_free(self);
}

#define GC_TYPE(Type, doc)                                           \
    {                                                                \
        PyVarObject_HEAD_INIT(NULL, 0)                               \
        .tp_name = "media_server.rtpforward." #Type,                 \
        .tp_basicsize = sizeof(Type),                                \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,         \
        .tp_doc = doc,                                               \
        .tp_new = PyType_GenericNew,                                 \
        .tp_init = (initproc)Type##_init,                            \
        .tp_dealloc = gc_dealloc,                                    \
        .tp_traverse = (traverseproc)Type##_traverse,                \
        .tp_clear = (inquiry)Type##_clear,                           \
        .tp_members = Type##_members,                                \
        .tp_methods = Type##_methods,                                \
    }

enum { SENT = 0, NOT_CONNECTED = 1, FAILED = 2 };

/* The outcome of a Python call on the way out (`r` its result): SENT, NOT_CONNECTED for a
   ConnectionError (cleared), else FAILED with the exception pending. */
static int outcome(PyObject *r) {
    if (r != NULL) {
        Py_DECREF(r);
        return SENT;
    }
    if (PyErr_ExceptionMatches(PyExc_ConnectionError)) {
        PyErr_Clear();
        return NOT_CONNECTED;
    }
    return FAILED;
}

/* One protected datagram onto the wire: the connected socket, else (full, or none) the event
   loop's queued send. */
static int transmit(Leg *leg, const uint8_t *buf, int len) {
    if (leg->fd >= 0) {
        if (send(leg->fd, buf, len, 0) >= 0) {
            leg->packets_sent++;
            return SENT;
        }
        if (errno == ECONNREFUSED) return NOT_CONNECTED; /* the peer's port is gone */
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
            PyErr_SetFromErrno(PyExc_OSError);
            return FAILED;
        }
    }
    if (leg->send_queued == NULL || leg->send_queued == Py_None) return NOT_CONNECTED;
    int rc = outcome(PyObject_CallFunction(leg->send_queued, "y#", (const char *)buf, (Py_ssize_t)len));
    if (rc == SENT) leg->packets_sent++;
    return rc;
}

/* Sends batched while a Leg handles what one wake-up of its socket brought (read_ready):
   the datagrams for one socket go out together in one sendmmsg instead of one send each
   (a forwarded video frame is several packets to the same subscriber). A send that fails
   after it was queued is counted on its Leg (dropped / faults): the Outbound has already
   counted it as sent. A queued packet's departure time is taken at the flush, just before
   its sendmmsg. */
#define SEND_BATCH 64
typedef struct {
    Leg *leg; /* a reference, released at the flush */
    int len;
    int64_t tcc_seq; /* its transport-wide sequence number in leg->departures; -1: none */
    uint8_t data[MTU + MAX_RTCP_TRAILER];
} QueuedSend;
static QueuedSend send_queue[SEND_BATCH];
static int queued_sends, batching, queued_stamps;

/* The departure time of the queued sends first..end-1 that carry a transport sequence. */
static void stamp_departures(int first, int end) {
    int64_t now = monotonic_us();
    for (int k = first; k < end; k++) {
        Departures *d = send_queue[k].leg->departures;
        int64_t seq = send_queue[k].tcc_seq;
        if (seq >= 0 && d != NULL && seq < d->next && seq >= d->next - d->size)
            departures_time(d, seq, now);
    }
}

static void flush_sends(void) {
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec iov[SEND_BATCH];
    int n = queued_sends, was = batching, stamps = queued_stamps;
    queued_sends = queued_stamps = 0;
    batching = 0; /* a Python fallback below sends at once */
    memset(msgs, 0, sizeof(struct mmsghdr) * n);
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = send_queue[i].data;
        iov[i].iov_len = send_queue[i].len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    for (int i = 0; i < n;) {
        Leg *leg = send_queue[i].leg;
        int fd = leg->fd, end = i + 1;
        while (end < n && send_queue[end].leg->fd == fd && fd >= 0) end++;
        if (stamps) stamp_departures(i, end);
        int done = fd >= 0 ? sendmmsg(fd, msgs + i, end - i, 0) : 0;
        if (done < 0) done = 0;
        leg->packets_sent += done;
        for (int k = i + done; k < end; k++) { /* what sendmmsg left: one by one, with fallbacks */
            Leg *to = send_queue[k].leg;
            int rc = transmit(to, send_queue[k].data, send_queue[k].len);
            if (rc == NOT_CONNECTED) count(to->dropped, k_not_connected);
            else if (rc == FAILED) fault(to->faults, k_where_send);
        }
        i = end;
    }
    for (int i = 0; i < n; i++) Py_DECREF(send_queue[i].leg);
    batching = was;
}

/* Protect and send one packet. `tcc_at`: where its transport-cc value is (0: it has none), to
   be stamped with the next transport-wide sequence number when the leg records departures;
   `kind`: SENT_MEDIA, SENT_RESEND or SENT_PADDING, recorded with it. */
static int leg_send(Leg *leg, const uint8_t *data, Py_ssize_t size, Py_ssize_t tcc_at, int kind) {
    if (!leg->connected || leg->tx == NULL) return NOT_CONNECTED;
    if (leg->nominated != NULL) {
        PyObject *pair = PyDict_GetItemWithError(leg->nominated, k_one);
        if (pair != leg->pair) {
            if (pair == NULL && PyErr_Occurred()) return FAILED;
            int rc = outcome(PyObject_CallNoArgs(leg->reroute));
            if (rc != SENT) return rc;
        }
    }
    int rtcp = size > 1 && data[1] > 191 && data[1] < 209;
    /* Whatever arrived in one datagram leaves in one: the buffer has room for the packet plus
       the largest trailer libsrtp may add (10 bytes for AES_CM_128_HMAC_SHA1_80, 16 for
       AEAD_AES_128_GCM, SRTCP 4 more), so a near-MTU packet is never refused. */
    if (size > MTU) {
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        return FAILED;
    }
    uint8_t local[MTU + MAX_RTCP_TRAILER], *buf = local;
    int queue = batching && leg->fd >= 0;
    if (queue) {
        if (queued_sends == SEND_BATCH) flush_sends();
        buf = send_queue[queued_sends].data;
    }
    memcpy(buf, data, size);
    Departures *d = leg->departures;
    int64_t tcc_seq = -1;
    if (tcc_at && d != NULL && d->ring != NULL && tcc_at + 2 <= size)
        tcc_seq = departures_stamp(d, buf + tcc_at);
    int len = (int)size;
    int rc = (rtcp ? srtp_protect_rtcp : srtp_protect)(leg->tx, buf, &len);
    if (rc) {
        if (tcc_seq >= 0) d->next--; /* nothing left with it: the number is not spent */
        PyErr_Format(PyExc_ValueError, "srtp_protect failed (status %d)", rc);
        return FAILED;
    }
    if (!queue) {
        if (tcc_seq >= 0) departures_record(d, tcc_seq, len, kind, monotonic_us());
        return transmit(leg, buf, len);
    }
    if (tcc_seq >= 0) {
        departures_record(d, tcc_seq, len, kind, 0); /* timed at the flush */
        queued_stamps = 1;
    }
    send_queue[queued_sends].leg = (Leg *)Py_NewRef(leg);
    send_queue[queued_sends].len = len;
    send_queue[queued_sends].tcc_seq = tcc_seq;
    queued_sends++;
    return SENT;
}

/* ---- Inbound: one publication's incoming stream ------------------------------------------- */

#define SEEN_WINDOW 1024

typedef struct {
    PyObject_HEAD
    PyObject *outbounds;    /* list of Outbound */
    PyObject *on_disorder;  /* (seq, previous max_seq, now) or None: NACK list */
    PyObject *on_frame;     /* (packet, frame payload bytes, arrival us) or None: bandwidth estimate */
    PyObject *on_restart;   /* () or None: the sequence numbers restarted (statistics reset) */
    PyObject *on_payload_type; /* (payload type) or None: a packet of another payload type */
    PyObject *faults;
    int payload_type;
    int clock_rate;
    long long packets_in, bytes_in;
    long long padding_in;   /* packets of padding alone, passed on as one padding octet */
    double last_packet_at;  /* NAN before the first packet */
    long long frame_bytes;
    /* RFC 3550 A.3/A.8 receive statistics, as aiortc's StreamStatistics */
    int base_seq, max_seq;  /* -1: none yet */
    long long cycles, packets_received, expected_prior, received_prior;
    long long jitter_q4, last_arrival;
    long long last_timestamp; /* -1: none */
    int bad_seq;            /* RFC 3550 A.1: the sequence number that confirms a jump, or -1 */
    /* RTX (RFC 4588) from the publisher: rtx_apt[payload type] is the media payload type a
       retransmission carries (-1: not RTX); `seen` marks which of the last SEEN_WINDOW
       sequence numbers arrived, so a retransmission of one that did (libwebrtc also sends old
       packets on RTX as bandwidth probes) is not forwarded to every subscriber again. */
    signed char rtx_apt[128];
    uint64_t seen[SEEN_WINDOW / 64];
    long long rtx_in;       /* retransmissions unwrapped and taken */
    /* Of packets_received, those that came as RTX repairs (since the statistics began): our
       receiver reports on the media SSRC leave them out (RFC 4588: they arrived on the RTX
       SSRC), as libwebrtc's receivers do, so a publisher's loss-based estimate sees what its
       uplink loses, not what is left after repair (counted as received, a policed 300 kbit/s
       uplink read little loss and its encoder kept sending more than got through). */
    long long repaired;
    /* VP8 (set by Python for a VP8 stream): bytes_in by temporal layer (TID 0..3), for the
       allocator's cost of forwarding a layer's lower frame rates */
    char vp8;
    long long temporal_bytes[4];
} Inbound;


static int seq_newer(int a, int b) { return a != b && ((a - b) & 0xFFFF) < 0x8000; }

/* RFC 3550 A.1: further ahead than MAX_DROPOUT or further back than MAX_MISORDER is a jump, not
   loss or reordering. Everything forwarded then stays within MAX_DROPOUT ahead and MAX_MISORDER
   behind what was forwarded before (after each Outbound's fixed offset too), well inside the
   send side's SRTP replay window (1024, aiortc's) and its 2^15 index estimate: a publisher
   cannot put a subscriber's SRTP stream into replay_old. */
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100

/* RFC 3550 A.1 init_seq: the next packet starts the statistics (the jitter estimate stays). */
static void stats_reset(Inbound *s) {
    memset(s->seen, 0, sizeof s->seen);
    s->base_seq = s->max_seq = -1;
    s->cycles = s->packets_received = s->expected_prior = s->received_prior = s->repaired = 0;
    s->last_timestamp = -1;
    s->bad_seq = -1;
}

static int outbound_forward(PyObject *self, const uint8_t *d, Py_ssize_t n, const Header *h,
                            const Vp8 *vp8);

/* RFC 3550 A.8: the interarrival jitter is of arrival times (`at_us`), so a batch handled
   at once after a stall of the event loop is not read as the publisher's jitter. */
static void stats_add(Inbound *s, const Header *h, int64_t at_us) {
    int in_order = s->max_seq < 0 || (h->seq != s->max_seq && ((h->seq - s->max_seq) & 0xFFFF) < 0x8000);
    s->packets_received++;
    if (s->base_seq < 0) s->base_seq = h->seq;
    if (!in_order) return;
    long long arrival = (long long)((double)at_us * 1e-6 * s->clock_rate);
    if (s->max_seq >= 0 && h->seq < s->max_seq) s->cycles += 1 << 16;
    s->max_seq = h->seq;
    if ((long long)h->ts != s->last_timestamp && s->packets_received > 1) {
        long long diff = (arrival - s->last_arrival) - ((long long)h->ts - s->last_timestamp);
        if (diff < 0) diff = -diff;
        s->jitter_q4 += diff - ((s->jitter_q4 + 8) >> 4);
    }
    s->last_arrival = arrival;
    s->last_timestamp = h->ts;
}

#define SEEN_BIT(seq) (s->seen[((seq) % SEEN_WINDOW) / 64] & (1ull << ((seq) % 64)))

static void seen_mark(Inbound *s, uint16_t seq, int previous) {
    if (previous >= 0 && seq_newer(seq, previous)) {
        uint16_t ahead = (uint16_t)(seq - previous);
        if (ahead >= SEEN_WINDOW) {
            memset(s->seen, 0, sizeof s->seen);
        } else {
            for (uint16_t k = 1; k < ahead; k++) { /* the gap: not arrived (yet) */
                uint16_t q = (uint16_t)(previous + k);
                s->seen[(q % SEEN_WINDOW) / 64] &= ~(1ull << (q % 64));
            }
        }
    }
    s->seen[(seq % SEEN_WINDOW) / 64] |= 1ull << (seq % 64);
}

static PyObject *inbound_receive(Inbound *s, const uint8_t *d, Py_ssize_t n, const Header *h, int64_t at_us);

/* A retransmission on the publisher's RTX stream: unwrapped (RFC 4588 4: the OSN becomes the
   sequence number, `apt` the payload type) and received as the packet it repairs, unless it
   carries no payload (padding: a bandwidth probe) or repairs nothing (already arrived, or
   older than SEEN_WINDOW). */
static PyObject *rtx_receive(Inbound *s, const uint8_t *d, Py_ssize_t n, const Header *h, int apt,
                             int64_t at_us) {
    Py_ssize_t pad = (d[0] & 0x20) ? d[n - 1] : 0;
    if (n > MTU) return k_oversize;
    if (n - h->payload_offset - pad < 2) return k_rtx_padding;
    uint16_t osn = be16(d + h->payload_offset);
    if (s->max_seq < 0) return k_rtx_unrepaired;
    if (!seq_newer(osn, s->max_seq)) {
        if ((uint16_t)(s->max_seq - osn) >= SEEN_WINDOW || SEEN_BIT(osn)) return k_rtx_unrepaired;
    }
    uint8_t buf[MTU];
    memcpy(buf, d, h->payload_offset);
    memcpy(buf + h->payload_offset, d + h->payload_offset + 2, n - h->payload_offset - 2);
    buf[1] = (uint8_t)((d[1] & 0x80) | apt);
    buf[2] = (uint8_t)(osn >> 8); buf[3] = (uint8_t)osn;
    Header unwrapped = *h;
    unwrapped.seq = osn;
    unwrapped.payload_type = (uint8_t)apt;
    s->rtx_in++;
    PyObject *reason = inbound_receive(s, buf, n - 2, &unwrapped, at_us);
    if (reason == NULL) s->repaired++;
    return reason;
}

/* NULL when accepted (and forwarded), else the reason it was dropped. `at_us`: when the
   packet arrived (monotonic_us). */
static PyObject *inbound_receive(Inbound *s, const uint8_t *d, Py_ssize_t n, const Header *h, int64_t at_us) {
    if (h->payload_type != s->payload_type && s->rtx_apt[h->payload_type] >= 0)
        return rtx_receive(s, d, n, h, s->rtx_apt[h->payload_type], at_us);
    if (h->payload_type != s->payload_type) {
        /* The publisher may switch among its negotiated codecs: Python decides (and sets
           payload_type) or the packet is dropped. Never reached in steady state. */
        if (s->on_payload_type == NULL || s->on_payload_type == Py_None) return k_payload_type;
        PyObject *r = PyObject_CallFunction(s->on_payload_type, "i", (int)h->payload_type);
        if (r == NULL) fault(s->faults, k_where_codec);
        Py_XDECREF(r);
        if (h->payload_type != s->payload_type) return k_payload_type;
    }
    /* Checked before the packet can touch any state (statistics, a restart, the temporal
       filter): a broken descriptor is the publisher's, dropped here for every subscriber. */
    Vp8 vp8, *descriptor = NULL; /* parsed here once for every Outbound of the fan-out */
    if (s->vp8) {
        if (vp8_parse_packet(d, n, h, &vp8) < 0) return k_malformed_vp8;
        descriptor = &vp8;
    }
    if (s->max_seq >= 0) {
        uint16_t ahead = (uint16_t)(h->seq - s->max_seq);
        if (ahead >= MAX_DROPOUT && ahead <= 0x10000 - MAX_MISORDER) {
            /* A stray packet, or the first of a restarted numbering: the next one tells. */
            if (h->seq != s->bad_seq) {
                s->bad_seq = (h->seq + 1) & 0xFFFF;
                return k_sequence_jump;
            }
            stats_reset(s);
            if (s->on_restart != Py_None) { /* re-base the Outbounds, forget the NACK list */
                PyObject *r = PyObject_CallNoArgs(s->on_restart);
                if (r == NULL) fault(s->faults, k_where_restart);
                Py_XDECREF(r);
            }
        }
    }
    /* A packet that arrived before (the network's duplicate; a resend raced by the original
       comes on the RTX stream and rtx_receive drops it): its subscribers have it or will ask
       for it. Forwarded again, one of a VP8 temporal layer not forwarded would go as padding
       under the number the packet after it took (temporal_filter: a late packet), and a
       subscriber that lost that packet would take the padding for it and never ask again.
       RFC 3550 A.3 counts it received all the same (as aiortc's statistics do). */
    if (s->max_seq >= 0 && !seq_newer(h->seq, s->max_seq) &&
        (uint16_t)(s->max_seq - h->seq) < SEEN_WINDOW && SEEN_BIT(h->seq)) {
        stats_add(s, h, at_us);
        return k_duplicate;
    }
    /* Padding alone (RFC 3550 5.1): libwebrtc's bandwidth probes and its padding up to its
       simulcast layers' bitrate, sent on a media SSRC when RTX is not negotiated (a CPU-starved
       encoder's q layer carried 0.9 Mbit/s of it). It goes on as one padding octet: the
       sequence number still reaches the subscriber (an empty packet is padding to it: no gap,
       no NACK), but the subscriber's downlink does not carry the publisher's probes, and the
       layer's bitrate (bytes_in) is its media. */
    uint8_t stub[MTU];
    if ((d[0] & 0x20) && h->payload_offset < MTU && n > h->payload_offset + 1 &&
        d[n - 1] == n - h->payload_offset) {
        memcpy(stub, d, h->payload_offset);
        stub[h->payload_offset] = 1;
        d = stub;
        n = h->payload_offset + 1;
        s->padding_in++;
    }
    double now = monotonic();
    int previous = s->max_seq;
    s->packets_in++;
    s->bytes_in += n;
    if (descriptor != NULL && vp8.tid >= 0) s->temporal_bytes[(int)vp8.tid] += n;
    s->last_packet_at = now;
    stats_add(s, h, at_us);
    seen_mark(s, h->seq, previous);
    if (s->on_disorder != Py_None && previous >= 0 && h->seq != ((previous + 1) & 0xFFFF)) {
        PyObject *r = PyObject_CallFunction(s->on_disorder, "iid", (int)h->seq, previous, now);
        if (r == NULL) fault(s->faults, k_where_nack);
        Py_XDECREF(r);
    }
    if (s->on_frame != Py_None) {
        s->frame_bytes += n - h->payload_offset;
        if (h->marker) {
            long long size = s->frame_bytes;
            s->frame_bytes = 0;
            PyObject *r = PyObject_CallFunction(s->on_frame, "y#LL", (const char *)d, n, size, (long long)at_us);
            if (r == NULL) fault(s->faults, k_where_frame);
            Py_XDECREF(r);
        }
    }
    PyObject *outs = s->outbounds;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(outs); i++) {
        PyObject *o = PyList_GET_ITEM(outs, i);
        if (!Py_IS_TYPE(o, &OutboundType)) continue;
        Py_INCREF(o); /* a hook may detach it */
        outbound_forward(o, d, n, h, descriptor);
        Py_DECREF(o);
        if (i >= PyList_GET_SIZE(outs)) break;
    }
    return NULL;
}

static int get_buffer(PyObject *arg, Py_buffer *view) {
    return PyObject_GetBuffer(arg, view, PyBUF_SIMPLE);
}

static PyObject *Inbound_receive(Inbound *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "receive(packet, at_us=now)");
        return NULL;
    }
    int64_t at_us = nargs == 2 ? PyLong_AsLongLong(args[1]) : monotonic_us();
    if (at_us == -1 && PyErr_Occurred()) return NULL;
    Py_buffer v;
    if (get_buffer(args[0], &v) < 0) return NULL;
    Header h;
    PyObject *reason;
    if (self->outbounds == NULL) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_RuntimeError, "Inbound is not initialised");
        return NULL;
    }
    if (parse(v.buf, v.len, &h) < 0) reason = k_malformed_rtp;
    else reason = inbound_receive(self, v.buf, v.len, &h, at_us);
    PyBuffer_Release(&v);
    if (reason == NULL) Py_RETURN_NONE;
    return Py_NewRef(reason);
}

static int Inbound_init(Inbound *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"clock_rate", "payload_type", "on_disorder", "on_frame", "faults",
                            "on_restart", "on_payload_type", NULL};
    PyObject *on_disorder = Py_None, *on_frame = Py_None, *faults = Py_None, *on_restart = Py_None;
    PyObject *on_pt = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ii|OOOOO", names, &self->clock_rate,
                                     &self->payload_type, &on_disorder, &on_frame, &faults,
                                     &on_restart, &on_pt))
        return -1;
    Py_XSETREF(self->outbounds, PyList_New(0));
    Py_XSETREF(self->on_disorder, Py_NewRef(on_disorder));
    Py_XSETREF(self->on_frame, Py_NewRef(on_frame));
    Py_XSETREF(self->on_restart, Py_NewRef(on_restart));
    Py_XSETREF(self->faults, Py_NewRef(faults));
    Py_XSETREF(self->on_payload_type, Py_NewRef(on_pt));
    self->last_packet_at = NAN;
    memset(self->rtx_apt, -1, sizeof self->rtx_apt);
    stats_reset(self);
    return self->outbounds ? 0 : -1;
}

static int Inbound_traverse(Inbound *self, visitproc visit, void *arg) {
    Py_VISIT(self->outbounds);
    Py_VISIT(self->on_disorder);
    Py_VISIT(self->on_frame);
    Py_VISIT(self->on_restart);
    Py_VISIT(self->faults);
    Py_VISIT(self->on_payload_type);
    return 0;
}

static int Inbound_clear(Inbound *self) {
    Py_CLEAR(self->outbounds);
    Py_CLEAR(self->on_disorder);
    Py_CLEAR(self->on_frame);
    Py_CLEAR(self->on_restart);
    Py_CLEAR(self->faults);
    Py_CLEAR(self->on_payload_type);
    return 0;
}

static PyObject *optional_int(long long v) {
    if (v < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(v);
}

static PyObject *Inbound_get_max_seq(Inbound *s, void *c) { return optional_int(s->max_seq); }
static PyObject *Inbound_get_base_seq(Inbound *s, void *c) { return optional_int(s->base_seq); }
static PyObject *Inbound_get_jitter(Inbound *s, void *c) { return PyLong_FromLongLong(s->jitter_q4 >> 4); }
static long long expected(Inbound *s) {
    return s->max_seq < 0 ? 0 : s->cycles + s->max_seq - s->base_seq + 1;
}
static PyObject *Inbound_get_packets_expected(Inbound *s, void *c) { return PyLong_FromLongLong(expected(s)); }
static PyObject *Inbound_get_packets_lost(Inbound *s, void *c) {
    long long lost = s->max_seq < 0 ? 0 : expected(s) - (s->packets_received - s->repaired);
    if (lost > 0x7FFFFF) lost = 0x7FFFFF; /* 24 bits, signed, as aiortc clamps */
    if (lost < -0x800000) lost = -0x800000;
    return PyLong_FromLongLong(lost);
}
/* Loss since the previous call (it moves the interval on, like aiortc's). */
static PyObject *Inbound_get_fraction_lost(Inbound *s, void *c) {
    long long exp = expected(s);
    long long expected_interval = exp - s->expected_prior;
    long long received = s->packets_received - s->repaired; /* on the media SSRC itself */
    long long received_interval = received - s->received_prior;
    s->expected_prior = exp;
    s->received_prior = received;
    long long lost = expected_interval - received_interval;
    if (expected_interval == 0 || lost <= 0) return PyLong_FromLong(0);
    return PyLong_FromLongLong((lost << 8) / expected_interval);
}
static PyObject *Inbound_get_last_packet_at(Inbound *s, void *c) {
    if (isnan(s->last_packet_at)) Py_RETURN_NONE;
    return PyFloat_FromDouble(s->last_packet_at);
}

static PyObject *Inbound_get_temporal_bytes(Inbound *s, void *c) {
    return Py_BuildValue("(LLLL)", s->temporal_bytes[0], s->temporal_bytes[1], s->temporal_bytes[2],
                         s->temporal_bytes[3]);
}

static PyGetSetDef Inbound_getset[] = {
    {"temporal_bytes", (getter)Inbound_get_temporal_bytes, NULL,
     "VP8: bytes received by temporal layer (TID 0..3), since the Inbound began", NULL},
    {"max_seq", (getter)Inbound_get_max_seq, NULL, NULL, NULL},
    {"base_seq", (getter)Inbound_get_base_seq, NULL, NULL, NULL},
    {"jitter", (getter)Inbound_get_jitter, NULL, NULL, NULL},
    {"packets_expected", (getter)Inbound_get_packets_expected, NULL, NULL, NULL},
    {"packets_lost", (getter)Inbound_get_packets_lost, NULL, NULL, NULL},
    {"fraction_lost", (getter)Inbound_get_fraction_lost, NULL, NULL, NULL},
    {"last_packet_at", (getter)Inbound_get_last_packet_at, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Inbound_members[] = {
    {"outbounds", T_OBJECT_EX, offsetof(Inbound, outbounds), READONLY, NULL},
    {"on_payload_type", T_OBJECT, offsetof(Inbound, on_payload_type), 0,
     "(payload type) for a packet of another payload type; may change payload_type"},
    {"payload_type", T_INT, offsetof(Inbound, payload_type), 0, NULL},
    {"vp8", T_BOOL, offsetof(Inbound, vp8), 0, "count temporal_bytes (the stream is VP8)"},
    {"packets_in", T_LONGLONG, offsetof(Inbound, packets_in), READONLY, NULL},
    {"bytes_in", T_LONGLONG, offsetof(Inbound, bytes_in), READONLY, NULL},
    {"padding_in", T_LONGLONG, offsetof(Inbound, padding_in), READONLY,
     "packets of padding alone, passed on as one padding octet"},
    {"cycles", T_LONGLONG, offsetof(Inbound, cycles), READONLY, NULL},
    {"packets_received", T_LONGLONG, offsetof(Inbound, packets_received), READONLY, NULL},
    {"rtx_in", T_LONGLONG, offsetof(Inbound, rtx_in), READONLY, "retransmissions unwrapped and taken"},
    {NULL},
};

/* {RTX payload type: the media payload type it repairs (its apt)} into map[rtx] = apt (-1: not
   RTX); -1 with an exception when a type is out of range, an RTX type is its own apt, or an apt
   names another RTX type (unwrapping would never end). */
static int rtx_map(PyObject *types, signed char map[128]) {
    if (!PyDict_Check(types)) {
        PyErr_SetString(PyExc_TypeError, "RTX payload types: {RTX payload type: media payload type}");
        return -1;
    }
    memset(map, -1, 128);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(types, &pos, &key, &value)) {
        long rtx = PyLong_AsLong(key), apt = PyLong_AsLong(value);
        if (PyErr_Occurred()) return -1;
        if (rtx < 0 || rtx > 127 || apt < 0 || apt > 127 || rtx == apt) {
            PyErr_SetString(PyExc_ValueError, "payload types are 0..127, an RTX type is not its apt");
            return -1;
        }
        map[rtx] = (signed char)apt;
    }
    for (int pt = 0; pt < 128; pt++)
        if (map[pt] >= 0 && map[map[pt]] >= 0) {
            PyErr_SetString(PyExc_ValueError, "an apt names another RTX payload type");
            return -1;
        }
    return 0;
}

static PyObject *Inbound_set_rtx(Inbound *self, PyObject *types) {
    signed char map[128];
    if (rtx_map(types, map) < 0) return NULL;
    memcpy(self->rtx_apt, map, sizeof map);
    Py_RETURN_NONE;
}

static PyObject *Inbound_restart(Inbound *self, PyObject *unused) {
    stats_reset(self);
    Py_RETURN_NONE;
}

static PyMethodDef Inbound_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))Inbound_receive, METH_FASTCALL,
     "receive(packet, at_us=now): account for one decrypted RTP packet that arrived at at_us "
     "(microseconds, CLOCK_MONOTONIC) and forward it; the drop reason or None."},
    {"set_rtx", (PyCFunction)Inbound_set_rtx, METH_O,
     "set_rtx({RTX payload type: media payload type}): retransmissions are unwrapped (RFC 4588)."},
    {"restart", (PyCFunction)Inbound_restart, METH_NOARGS,
     "A new stream follows (another SSRC): receive statistics start again at its next packet."},
    {NULL},
};

static PyTypeObject InboundType = GC_TYPE(Inbound, "One publication's incoming stream: statistics and fan-out to its Outbounds.");

/* ---- Outbound: one subscription's outgoing stream ----------------------------------------- */

/* The send history keeps what was sent in one ring of bytes per subscription, allocated at
   its first packet (an idle member costs nothing) and sized to what the stream sent in the
   last history_seconds (up to history_max_bytes): as libwebrtc's RtpPacketHistory keeps
   max(1 s, 3 RTT) and Janus its max_nack_queue of milliseconds. A slot per sequence number
   (& mask) says where a packet is; a NACK for one older than history_seconds is not answered
   (the receiver has given up on it).

   What the last history_seconds sent is measured from marks (bytes written, sequence number,
   time) taken every sixteenth of it: the newest mark at least history_seconds old (the base)
   bounds from below where the packets still to be answered start. A packet that would
   overwrite bytes after the base grows the ring to those bytes and an eighth more (not to
   the next power of two: a 1.4 Mbit/s second is 175 kB, which doubling held in 256 kB); one
   whose sequence number is as far past the base's as there are slots doubles the slots. A
   stream whose rate fell (a lower simulcast layer, a paused video) gives memory back when its
   ring holds over half again what its last history_seconds needs. */
#define HISTORY_MIN_BYTES 16384 /* the least history_max_bytes may be */
#define HISTORY_FIRST_BYTES 4096 /* the ring at the first packet: an audio stream's second */
#define HISTORY_FIRST_SLOTS 64   /* slots at the first packet: an audio stream's second */
#define HISTORY_MARKS 17         /* 16 sixteenths of history_seconds and the base before them */
/* Rings this large are pages of their own (mmap): malloc would serve a ring of a few hundred
   kB from its heap once one was freed (glibc raises its mmap threshold to the largest freed),
   where rings resized as streams ramp up leave holes and one given back is not given back. */
#define HISTORY_PAGED_BYTES 65536
#define HISTORY_PAGE 4096

typedef struct {
    uint32_t pos;     /* where it starts in bytes ever written (mod 2^32) */
    uint32_t sent_ms; /* since the Outbound's epoch */
    uint16_t seq, len; /* len 0: empty */
} Slot;

typedef struct {
    uint32_t written; /* bytes ever written when it was taken: later packets start here or after */
    uint32_t ms;      /* since the Outbound's epoch */
    uint16_t seq;     /* the sequence number of the packet it was taken at */
} Mark;

/* VP8 temporal layers (RFC 7741 4.2: TID, the Y bit). A subscription may be forwarded the
   frames of temporal layers up to `target` only (the allocator's choice: a lower frame rate at
   the same resolution, at once, with no keyframe). What is not forwarded leaves no trace: the
   sequence numbers and PictureIDs that follow close up over it (a gap would be NACKed, and
   libwebrtc's VP8 reference finder holds frames back while a PictureID is missing), as
   mediasoup's and LiveKit's VP8 forwarders do; TL0PICIDX needs nothing (layer 0 is never
   dropped). The layer in effect changes at the start of a frame only: down at any, up at one
   a decoder of the lower layers can take up from (layer 0, or a layer-sync frame of a layer up
   to the target).

   A packet that arrives late (a publisher's repair, reordering) takes the skips in effect when
   the packets after it were numbered: `marks` holds, per run of packets not forwarded, the
   first sequence number after it and the skips from there on. A late packet was promised its
   sequence number by the packets numbered after it; it goes as its frame went (`frames`: the
   verdict of each recent frame, by RTP timestamp), so a frame is forwarded whole or not at
   all: a late packet of a frame not forwarded goes as padding alone (the subscriber sees no
   gap, and no piece of a frame whose PictureID the next frame took over), and one of a frame
   forwarded goes on though the layer has come down since. A late packet of a frame none of
   whose packets came before goes by the layer in effect. */
#define TEMPORAL_ALL 255
#define TEMPORAL_MARKS 64 /* runs of dropped packets among the MAX_MISORDER a late packet may be behind */
#define TEMPORAL_FRAMES 128 /* frames among the MAX_MISORDER packets a late packet may be behind */

typedef struct {
    uint16_t from;                /* the first sequence number (the source's) these skips apply to */
    uint16_t skip_seq, skip_pid;  /* packets and pictures not forwarded before it */
} TemporalMark;

typedef struct {
    uint32_t ts;                  /* the frame's RTP timestamp (the source's) */
    char dropped;                 /* its packets are not forwarded */
} TemporalFrame;

typedef struct {
    uint8_t target, layer;        /* the highest TID to forward: wanted, in effect (ALL: every one) */
    uint16_t skip_seq, skip_pid;  /* since the stream was last re-based */
    int newest_in;                /* the newest source sequence number seen; -1: none since re-based */
    int dropped_pid;              /* the last PictureID not forwarded; -1: none */
    uint8_t marks_used, newest_mark;
    char marks_lost;              /* a mark was overwritten: a packet older than the oldest is dropped */
    TemporalMark marks[TEMPORAL_MARKS];
    uint8_t frames_used, newest_frame;
    TemporalFrame frames[TEMPORAL_FRAMES];
    long long dropped;            /* packets not forwarded (or sent as padding) for their layer */
} Temporal;

typedef struct {
    PyObject_HEAD
    PyObject *send;      /* a Leg (compiled send), a callable (bytes), or None: not negotiated */
    PyObject *prepare;   /* (packet) -> bool, while not ready: keyframe gate and re-basing */
    PyObject *plan_for;  /* (packet) -> plan, or None: the extension block passes unchanged */
    char transport_seq;  /* plans add a transport-cc element: a packet without an extension
                            block is planned too (set_route) */
    PyObject *dropped;
    PyObject *faults;
    Slot *slots;         /* by sequence number & mask; NULL until the first packet is kept */
    uint8_t *ring;       /* the packets' bytes (before SRTP) in sending order, oldest overwritten */
    uint32_t max_mask;   /* the most slots - 1 (a power of two); 0: not initialised, or released */
    uint32_t mask;       /* slots - 1 now: HISTORY_FIRST_SLOTS - 1 .. max_mask */
    uint32_t ring_size;  /* bytes: HISTORY_FIRST_BYTES .. max_bytes */
    uint32_t max_bytes;
    uint32_t head;       /* where in the ring the next packet goes (a packet never straddles its end) */
    uint32_t written;    /* bytes ever written to the ring (mod 2^32), skipped ends included */
    uint32_t valid_from; /* the oldest byte still held (after a resize: what was copied) */
    Mark marks[HISTORY_MARKS]; /* a ring of them: base .. newest */
    uint8_t base, newest;
    double history_seconds; /* sent() answers packets sent at most this long ago */
    double epoch;        /* monotonic() when created: slots' times count from it */
    uint32_t replay_window; /* libsrtp protects again only packets this close to the newest */
    char ready;
    uint32_t ssrc;
    int payload_type;
    uint16_t seq_offset;
    uint32_t ts_offset;
    /* VP8 (RFC 7741): PictureID and TL0PICIDX continue across a source switch (a simulcast
       layer has numbering of its own; a receiver orders frames by PictureID). */
    char vp8;
    uint16_t picture_id_offset;
    uint8_t tl0_offset;
    int last_picture_id, last_tl0; /* -1: none sent yet */
    Temporal temporal;
    /* RTX towards the subscriber (RFC 4588), where its answer accepted it: a resend goes out on
       rtx_ssrc with the RTX stream's own sequence numbers, as rtx_types[media payload type]
       (0: that codec has no RTX, its resends go as they were sent, on the media SSRC). */
    uint32_t rtx_ssrc;
    uint16_t rtx_seq;     /* the RTX stream's next sequence number */
    uint8_t rtx_types[128];
    long long rtx_packets_out;
    long long rtx_payload_bytes_out; /* OSN + payload: its sender reports' octet count */
    long long packets_out, bytes_out, payload_bytes_out;
    int last_seq;        /* -1: nothing sent yet */
    /* The source sequence number prepare last re-based the numbering at, while a packet from
       before it may still arrive (RESTART_WINDOW); -1: none. Such a packet (a new source's
       from before its keyframe, reordered) would be numbered before the re-base point, with
       the numbers the packets sent before the re-base took: it is dropped (before_restart). */
    int restart_from;
    uint32_t last_ts;
    double last_sent_at; /* NAN: never */
    int nplans, next_plan;
    Plan plans[PLANS];
} Outbound;

static const Plan *find_plan(Outbound *o, const uint8_t *d, Py_ssize_t n, const Header *h, Plan *scratch) {
    uint8_t sig[SIG_MAX];
    int siglen = signature(d, h, sig);
    if (siglen > 0) {
        for (int i = 0; i < o->nplans; i++)
            if (o->plans[i].siglen == siglen && !memcmp(o->plans[i].sig, sig, siglen)) return &o->plans[i];
    }
    PyObject *plan = PyObject_CallFunction(o->plan_for, "y#", (const char *)d, n);
    if (plan == NULL) return NULL;
    Plan *slot = scratch;
    if (siglen > 0) {
        slot = &o->plans[o->next_plan];
        o->next_plan = (o->next_plan + 1) % PLANS;
        if (o->nplans < PLANS) o->nplans++;
    }
    slot->siglen = -1; /* unusable until compiled */
    int rc = compile_plan(plan, h->payload_offset, slot);
    Py_DECREF(plan);
    if (rc < 0) return NULL;
    if (siglen > 0) {
        slot->siglen = siglen;
        memcpy(slot->sig, sig, siglen);
    }
    return slot;
}


/* The PictureID and TL0PICIDX of `p`, a payload whose descriptor `v` describes, plus the
   offsets. `pid_offset`: picture_id_offset less the pictures the temporal filter skipped. */
static void vp8_rewrite(Outbound *o, uint8_t *p, const Vp8 *v, int newest, uint16_t pid_offset) {
    Py_ssize_t pid_at = v->pid_at, tl0_at = v->tl0_at;
    if (pid_at >= 0) {
        int pid;
        if (v->wide) {
            pid = (((p[pid_at] & 0x7F) << 8 | p[pid_at + 1]) + pid_offset) & 0x7FFF;
            p[pid_at] = (uint8_t)(0x80 | pid >> 8);
            p[pid_at + 1] = (uint8_t)pid;
        } else {
            pid = ((p[pid_at] & 0x7F) + pid_offset) & 0x7F;
            p[pid_at] = (uint8_t)pid;
        }
        if (newest) o->last_picture_id = pid;
    }
    if (tl0_at >= 0) {
        p[tl0_at] = (uint8_t)(p[tl0_at] + o->tl0_offset);
        if (newest) o->last_tl0 = p[tl0_at];
    }
}

static void temporal_rebase(Temporal *t) {
    t->layer = t->target;
    t->skip_seq = t->skip_pid = 0;
    t->newest_in = t->dropped_pid = -1;
    t->marks_used = t->newest_mark = 0;
    t->marks_lost = 0;
    t->frames_used = t->newest_frame = 0;
}

/* A new entry in `frames` for the frame with RTP timestamp `ts`, over the oldest. */
static TemporalFrame *temporal_frame(Temporal *t, uint32_t ts) {
    if (t->frames_used) t->newest_frame = (uint8_t)((t->newest_frame + 1) % TEMPORAL_FRAMES);
    if (t->frames_used < TEMPORAL_FRAMES) t->frames_used++;
    TemporalFrame *frame = &t->frames[t->newest_frame];
    frame->ts = ts;
    return frame;
}

/* What the temporal filter makes of a VP8 packet with source sequence number `seq`: forwarded
   with the skips in *skip_seq and *skip_pid (TEMPORAL_FORWARD), not forwarded
   (TEMPORAL_DROP), padding alone in its place (TEMPORAL_STUB), or dropped as too late to
   number (TEMPORAL_LATE: older than every run of skipped packets tracked). */
enum { TEMPORAL_FORWARD, TEMPORAL_DROP, TEMPORAL_STUB, TEMPORAL_LATE };

static int temporal_filter(Temporal *t, uint16_t seq, uint32_t ts, const Vp8 *v, uint16_t *skip_seq,
                           uint16_t *skip_pid) {
    int tid = v->tid, sync = v->sync, start = v->start, pid = v->pid;
    if (t->newest_in < 0 || seq_newer(seq, t->newest_in)) {
        if (start && tid >= 0) {
            if (t->target < t->layer) t->layer = t->target;
            else if (t->target > t->layer && (tid == 0 || (sync && tid <= t->target))) t->layer = t->target;
        }
        t->newest_in = seq;
        if (v->media) { /* padding carries the timestamp of a frame, not its verdict */
            TemporalFrame *frame = &t->frames[t->newest_frame];
            if (t->frames_used == 0 || frame->ts != ts) frame = temporal_frame(t, ts);
            frame->dropped = tid > t->layer;
        }
        if (tid > t->layer) {
            t->dropped++;
            t->skip_seq++;
            if (pid >= 0 && pid != t->dropped_pid) {
                t->skip_pid++;
                t->dropped_pid = pid;
            }
            TemporalMark *mark = &t->marks[t->newest_mark];
            if (t->marks_used == 0 || mark->from != seq) { /* a new run of dropped packets */
                if (t->marks_used) t->newest_mark = (uint8_t)((t->newest_mark + 1) % TEMPORAL_MARKS);
                if (t->marks_used == TEMPORAL_MARKS) t->marks_lost = 1;
                else t->marks_used++;
                mark = &t->marks[t->newest_mark];
            }
            *mark = (TemporalMark){(uint16_t)(seq + 1), t->skip_seq, t->skip_pid};
            return TEMPORAL_DROP;
        }
        *skip_seq = t->skip_seq;
        *skip_pid = t->skip_pid;
        return TEMPORAL_FORWARD;
    }
    /* late: numbered as the packets after it were, newest mark first */
    *skip_seq = *skip_pid = 0;
    int found = 0;
    for (int i = 0; i < t->marks_used && !found; i++) {
        const TemporalMark *mark = &t->marks[(t->newest_mark + TEMPORAL_MARKS - i) % TEMPORAL_MARKS];
        if (mark->from == seq || seq_newer(seq, mark->from)) {
            *skip_seq = mark->skip_seq;
            *skip_pid = mark->skip_pid;
            found = 1;
        }
    }
    if (!found && t->marks_lost) return TEMPORAL_LATE;
    const TemporalFrame *frame = NULL;
    for (int i = 0; i < t->frames_used && frame == NULL && v->media; i++) {
        const TemporalFrame *f = &t->frames[(t->newest_frame + TEMPORAL_FRAMES - i) % TEMPORAL_FRAMES];
        if (f->ts == ts) frame = f;
    }
    int dropped = tid > t->layer;
    if (frame != NULL) dropped = frame->dropped;
    else if (v->media) /* the first of its frame to arrive: the rest of it goes as it does */
        temporal_frame(t, ts)->dropped = (char)dropped;
    if (dropped) {
        t->dropped++;
        return TEMPORAL_STUB;
    }
    return TEMPORAL_FORWARD;
}

static int outbound_deliver(Outbound *o, const uint8_t *data, Py_ssize_t size, Py_ssize_t tcc_at, int kind) {
    if (Py_IS_TYPE(o->send, &LegType)) return leg_send((Leg *)o->send, data, size, tcc_at, kind);
    PyObject *packet = PyBytes_FromStringAndSize((const char *)data, size);
    if (packet == NULL) return FAILED;
    int rc = outcome(PyObject_CallOneArg(o->send, packet));
    Py_DECREF(packet);
    return rc;
}

/* Milliseconds since the Outbound was created, mod 2^32 (compared by difference: 49 days wrap). */
static uint32_t since_epoch_ms(Outbound *o, double now) { return (uint32_t)(uint64_t)((now - o->epoch) * 1000.0); }

static uint8_t *ring_alloc(uint32_t size) {
    if (size < HISTORY_PAGED_BYTES) return PyMem_Malloc(size);
    void *ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return ring == MAP_FAILED ? NULL : ring;
}

static void ring_free(uint8_t *ring, uint32_t size) {
    if (ring == NULL) return;
    if (size < HISTORY_PAGED_BYTES) PyMem_Free(ring);
    else munmap(ring, size);
}

/* The ring as `size` bytes holding the newest ones it held (all of them that fit) from its
   start; -1: no memory (the ring is as it was). */
static int history_resize(Outbound *o, uint32_t size) {
    uint8_t *ring = ring_alloc(size);
    if (ring == NULL) return -1;
    uint32_t keep = o->written - o->valid_from;
    if (keep > o->ring_size) keep = o->ring_size;
    if (keep > size) keep = size;
    uint32_t from = (o->head + o->ring_size - keep) % o->ring_size, first = o->ring_size - from;
    if (first > keep) first = keep;
    memcpy(ring, o->ring + from, first);
    memcpy(ring + first, o->ring, keep - first);
    ring_free(o->ring, o->ring_size);
    o->ring = ring;
    o->ring_size = size;
    o->head = keep == size ? 0 : keep;
    o->valid_from = o->written - keep;
    return 0;
}

/* The slots as `count` (a power of two), each packet at its sequence number's, the newer
   where two meet; -1: no memory (the slots are as they were). */
static int history_reslot(Outbound *o, uint32_t count) {
    Slot *slots = PyMem_Calloc(count, sizeof(Slot));
    if (slots == NULL) return -1;
    for (uint32_t i = 0; i <= o->mask; i++) {
        const Slot *old = &o->slots[i];
        Slot *to = &slots[old->seq & (count - 1)];
        if (old->len && (to->len == 0 || (int32_t)(old->pos - to->pos) > 0)) *to = *old;
    }
    PyMem_Free(o->slots);
    o->slots = slots;
    o->mask = count - 1;
    return 0;
}

/* Bytes that hold `need` with an eighth to spare (whole pages when paged), within what the
   history may hold. */
static uint32_t history_room(const Outbound *o, uint32_t need) {
    uint64_t room = (uint64_t)need + need / 8;
    if (room < HISTORY_FIRST_BYTES) room = HISTORY_FIRST_BYTES;
    if (room >= HISTORY_PAGED_BYTES) room = (room + HISTORY_PAGE - 1) / HISTORY_PAGE * HISTORY_PAGE;
    return room > o->max_bytes ? o->max_bytes : (uint32_t)room;
}

/* Slots (a power of two) for a span of `span` sequence numbers, within what the history may hold. */
static uint32_t history_slots_for(const Outbound *o, uint32_t span) {
    uint32_t count = HISTORY_FIRST_SLOTS;
    while (count <= span && count <= o->max_mask) count <<= 1;
    return count > o->max_mask + 1 ? o->max_mask + 1 : count;
}

/* Every sixteenth of history_seconds a mark; the base moves to the newest mark at least
   history_seconds old, and then a ring or slots holding over twice what came since is cut. A
   full ring of marks (history_seconds raised) waits for the base to move: the base is never
   younger than history_seconds. */
static void history_mark(Outbound *o, uint32_t ms, uint16_t seq) {
    double keep_ms = o->history_seconds * 1000.0;
    uint8_t next = (uint8_t)((o->base + 1) % HISTORY_MARKS);
    while (o->base != o->newest && (double)(uint32_t)(ms - o->marks[next].ms) >= keep_ms) {
        o->base = next;
        next = (uint8_t)((o->base + 1) % HISTORY_MARKS);
    }
    next = (uint8_t)((o->newest + 1) % HISTORY_MARKS);
    if ((double)(uint32_t)(ms - o->marks[o->newest].ms) < keep_ms / 16 || next == o->base) return;
    o->newest = next;
    o->marks[next] = (Mark){o->written, ms, seq};
    const Mark *base = &o->marks[o->base];
    uint32_t room = history_room(o, o->written - base->written);
    if (o->ring_size > room + room / 2) history_resize(o, room); /* no memory: keep the larger */
    uint32_t slots = history_slots_for(o, (uint16_t)(seq - base->seq));
    if (o->mask + 1 > 2 * slots) history_reslot(o, slots);
}

/* The history's memory given back: sent() answers nothing until a packet is kept again. */
static void history_release(Outbound *o) {
    PyMem_Free(o->slots);
    ring_free(o->ring, o->ring_size);
    o->slots = NULL;
    o->ring = NULL;
}

/* Where to write the packet of n bytes about to be sent with this sequence number: its place
   in the history, kept for sent() (built there, so keeping it costs no copy); NULL when the
   history cannot be allocated (a fault: the packet goes from the caller's buffer, unkept). */
static uint8_t *history_place(Outbound *o, Py_ssize_t n, uint16_t seq, double now) {
    uint32_t ms = since_epoch_ms(o, now);
    if (o->slots == NULL) {
        o->ring_size = HISTORY_FIRST_BYTES;
        o->mask = history_slots_for(o, 0) - 1;
        o->slots = PyMem_Calloc((size_t)o->mask + 1, sizeof(Slot));
        o->ring = ring_alloc(o->ring_size);
        if (o->slots == NULL || o->ring == NULL) {
            history_release(o);
            PyErr_NoMemory();
            fault(o->faults, k_where_forward); /* counted and logged; the packet still goes */
            return NULL;
        }
        o->head = 0;
        o->valid_from = o->written;
        o->base = o->newest = 0;
        o->marks[0] = (Mark){o->written, ms, seq};
    }
    history_mark(o, ms, seq);
    const Mark *base = &o->marks[o->base];
    /* Bytes from the base on may still be asked for: a ring that would overwrite them grows
       (when it cannot, the oldest go: history_max_bytes bounds it). */
    uint32_t skip = o->head + (uint32_t)n > o->ring_size ? o->ring_size - o->head : 0;
    uint32_t need = o->written + skip + (uint32_t)n - base->written;
    if (need > o->ring_size && o->ring_size < o->max_bytes) {
        /* a packet more: the resized ring may have to skip its end for this one */
        history_resize(o, history_room(o, need + (uint32_t)n)); /* no memory: the oldest go */
        skip = o->head + (uint32_t)n > o->ring_size ? o->ring_size - o->head : 0;
    }
    uint32_t span = (uint16_t)(seq - base->seq);
    if (span < 0x8000 && span > o->mask && o->mask < o->max_mask)
        history_reslot(o, history_slots_for(o, span)); /* no memory: a slot is reused early */
    o->written += skip;
    if (skip) o->head = 0;
    Slot *slot = &o->slots[seq & o->mask];
    slot->pos = o->written;
    slot->sent_ms = ms;
    slot->seq = seq;
    slot->len = (uint16_t)n;
    uint8_t *at = o->ring + o->head;
    o->written += (uint32_t)n;
    o->head += (uint32_t)n;
    if (o->head == o->ring_size) o->head = 0;
    if (o->written - o->valid_from > o->ring_size) o->valid_from = o->written - o->ring_size;
    return at;
}

/* Packets after a re-base past which none from before it can arrive: the Inbound takes one at
   most MAX_MISORDER behind the newest (RFC 3550 A.1). */
#define RESTART_WINDOW 0x1000

/* `vp8`: the payload's descriptor where the caller parsed it (NULL: parsed here if needed). */
static int outbound_forward(PyObject *self, const uint8_t *d, Py_ssize_t n, const Header *h,
                            const Vp8 *vp8) {
    Outbound *o = (Outbound *)self;
    if (o->max_mask == 0) return 0; /* never initialised */
    /* A datagram read from a socket holds at most MTU bytes; a packet handed to Inbound.receive
       or Outbound.forward may be longer, and the buffers below (a late packet's padding stub,
       the copy sent) are MTU bytes: it could never go out whole anyway. */
    if (n > MTU) {
        count(o->dropped, k_too_long);
        return 0;
    }
    if (!o->ready || o->send == Py_None) {
        PyObject *r = PyObject_CallFunction(o->prepare, "y#", (const char *)d, n);
        if (r == NULL) {
            count(o->dropped, k_send_error);
            fault(o->faults, k_where_forward);
            return -1;
        }
        int go = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (go <= 0 || !o->ready || o->send == Py_None) return 0;
        temporal_rebase(&o->temporal); /* prepare re-based the numbering */
        o->restart_from = h->seq;
    } else if (o->restart_from >= 0) {
        uint16_t after = (uint16_t)(h->seq - o->restart_from);
        if (after >= 0x8000) {
            count(o->dropped, k_before_restart);
            return 0;
        }
        if (after >= RESTART_WINDOW) o->restart_from = -1; /* nothing that old gets this far */
    }
    uint16_t skip_seq = 0, skip_pid = 0;
    uint8_t stub[MTU];
    Vp8 parsed;
    if (o->vp8 && vp8 == NULL) {
        if (vp8_parse_packet(d, n, h, &parsed) < 0) {
            count(o->dropped, k_malformed_vp8);
            return 0;
        }
        vp8 = &parsed;
    }
    if (o->vp8) {
        int verdict = temporal_filter(&o->temporal, h->seq, h->ts, vp8, &skip_seq, &skip_pid);
        if (verdict == TEMPORAL_DROP) return 0;
        if (verdict == TEMPORAL_LATE) {
            count(o->dropped, k_temporal_late);
            return 0;
        }
        if (verdict == TEMPORAL_STUB) { /* padding alone (RFC 3550 5.1), as Inbound passes padding */
            memcpy(stub, d, h->payload_offset);
            stub[0] |= 0x20;
            stub[h->payload_offset] = 1;
            d = stub;
            n = h->payload_offset + 1;
            vp8 = NULL; /* nothing of VP8 left to rewrite */
        }
    }
    uint16_t seq = (uint16_t)(h->seq + o->seq_offset - skip_seq);
    uint32_t ts = h->ts + o->ts_offset;
    const Plan *plan = NULL;
    Plan scratch; /* only for a layout too long to cache; compile_plan fills what it uses */
    scratch.owner = NULL;
    if ((h->ext_offset || o->transport_seq) && o->plan_for != Py_None) {
        plan = find_plan(o, d, n, h, &scratch);
        if (plan == NULL) {
            Py_CLEAR(scratch.owner);
            count(o->dropped, k_send_error);
            fault(o->faults, k_where_forward);
            return -1;
        }
    }
    Py_ssize_t payload = n - h->payload_offset;
    Py_ssize_t size = plan ? plan->out_len + payload : n;
    /* What leaves is one datagram of at most MTU bytes once protected (the largest SRTP tag is
       AEAD_AES_*_GCM's 16): aiortc's receiver unprotects into a 1500-byte buffer and a longer
       datagram raises out of its receive loop, ending the subscriber's transport. Only a
       publisher's near-MTU packet gets here (grown by a longer MID, or a GCM subscriber of an
       AES_CM publisher); it is that publisher's, so a drop, never a send_error. */
    if (size > MTU - MAX_SRTP_TAG) {
        Py_CLEAR(scratch.owner);
        count(o->dropped, k_too_long);
        return 0;
    }
    double now = monotonic();
    uint8_t local[MTU], *out = NULL;
    if (o->history_seconds > 0)
        out = history_place(o, size, seq, now);
    else if (o->slots != NULL) /* a subscriber that asks for no resends: nothing to keep */
        history_release(o);
    if (out == NULL) out = local;
    Py_ssize_t tcc_at = 0;
    if (plan) {
        run_plan(plan, d, out);
        memcpy(out + plan->out_len, d + h->payload_offset, payload);
        tcc_at = plan->tcc_at;
        if (tcc_at) out[0] |= 0x10; /* the plan may have given the packet its extension block */
    } else {
        memcpy(out, d, n);
    }
    Py_CLEAR(scratch.owner);
    out[1] = (uint8_t)((d[1] & 0x80) | o->payload_type);
    out[2] = seq >> 8; out[3] = (uint8_t)seq;
    out[4] = ts >> 24; out[5] = (uint8_t)(ts >> 16); out[6] = (uint8_t)(ts >> 8); out[7] = (uint8_t)ts;
    out[8] = o->ssrc >> 24; out[9] = (uint8_t)(o->ssrc >> 16); out[10] = (uint8_t)(o->ssrc >> 8); out[11] = (uint8_t)o->ssrc;
    if (o->vp8 && vp8 != NULL)
        vp8_rewrite(o, out + (plan ? plan->out_len : h->payload_offset), vp8,
                    o->last_seq < 0 || seq_newer(seq, o->last_seq), (uint16_t)(o->picture_id_offset - skip_pid));
    int rc = outbound_deliver(o, out, size, tcc_at, SENT_MEDIA);
    if (rc == NOT_CONNECTED) {
        count(o->dropped, k_not_connected);
        if (o->last_seq < 0) o->ready = 0; /* nothing reached the subscriber: start at a keyframe */
        return 0;
    }
    if (rc == FAILED) {
        count(o->dropped, k_send_error);
        fault(o->faults, k_where_forward);
        return -1;
    }
    o->packets_out++;
    o->bytes_out += size;
    o->payload_bytes_out += payload;
    if (o->last_seq < 0 || seq_newer(seq, o->last_seq)) {
        o->last_seq = seq;
        o->last_ts = ts;
        o->last_sent_at = now;
    }
    return 0;
}

static int Outbound_init(Outbound *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"history_packets", "prepare", "dropped", "faults", "replay_window",
                            "history_seconds", "history_max_bytes", NULL};
    int capacity;
    unsigned int window = 1024, max_bytes = 1 << 20;
    double seconds = 1.0;
    PyObject *prepare, *dropped, *faults = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iOO!|OIdI", names, &capacity, &prepare,
                                     &PyDict_Type, &dropped, &faults, &window, &seconds, &max_bytes))
        return -1;
    if (max_bytes < HISTORY_MIN_BYTES || max_bytes > (1u << 30)) {
        PyErr_SetString(PyExc_ValueError, "history_max_bytes must be 16384..2**30");
        return -1;
    }
    if (window < 1 || window > 0x8000) {
        PyErr_SetString(PyExc_ValueError, "replay_window must be 1..32768");
        return -1;
    }
    self->replay_window = window;
    if (capacity < 1 || capacity > (1 << 16)) {
        PyErr_SetString(PyExc_ValueError, "history_packets must be 1..65536");
        return -1;
    }
    if (self->max_mask != 0) {
        PyErr_SetString(PyExc_RuntimeError, "Outbound is initialised once");
        return -1;
    }
    uint32_t size = 2;
    while (size < (uint32_t)capacity) size <<= 1;
    self->max_mask = size - 1;
    self->max_bytes = max_bytes;
    self->history_seconds = seconds;
    self->epoch = monotonic();
    self->send = Py_NewRef(Py_None);
    self->plan_for = Py_NewRef(Py_None);
    self->prepare = Py_NewRef(prepare);
    self->dropped = Py_NewRef(dropped);
    self->faults = Py_NewRef(faults);
    self->last_seq = self->restart_from = -1;
    self->last_picture_id = self->last_tl0 = -1;
    self->temporal.target = TEMPORAL_ALL;
    temporal_rebase(&self->temporal);
    self->last_sent_at = NAN;
    return 0;
}

static int Outbound_traverse(Outbound *self, visitproc visit, void *arg) {
    Py_VISIT(self->send);
    Py_VISIT(self->prepare);
    Py_VISIT(self->plan_for);
    Py_VISIT(self->dropped);
    Py_VISIT(self->faults);
    for (int i = 0; i < PLANS; i++) Py_VISIT(self->plans[i].owner);
    return 0;
}

static void forget_plans(Outbound *self) {
    for (int i = 0; i < PLANS; i++) {
        Py_CLEAR(self->plans[i].owner);
        self->plans[i].siglen = -1;
    }
    self->nplans = self->next_plan = 0;
}

static int Outbound_clear(Outbound *self) {
    Py_CLEAR(self->send);
    Py_CLEAR(self->prepare);
    Py_CLEAR(self->plan_for);
    Py_CLEAR(self->dropped);
    Py_CLEAR(self->faults);
    forget_plans(self);
    self->max_mask = 0; /* forward() and sent() treat a released history as none */
    history_release(self);
    return 0;
}

static PyObject *Outbound_forward(Outbound *self, PyObject *arg) {
    if (self->max_mask == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Outbound is not initialised");
        return NULL;
    }
    Py_buffer v;
    if (get_buffer(arg, &v) < 0) return NULL;
    Header h;
    int ok = parse(v.buf, v.len, &h) == 0;
    if (ok) outbound_forward((PyObject *)self, v.buf, v.len, &h, NULL);
    PyBuffer_Release(&v);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "not a well-formed RTP packet");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Where the history holds the packet sent with sequence number `seq` (its length in *len), NULL
   when it holds none young enough to help: never sent, its slot or bytes taken by newer
   packets, or sent longer than history_seconds ago (the receiver has given up on it). */
static const uint8_t *held(Outbound *o, long seq, Py_ssize_t *len) {
    if (o->slots == NULL || seq < 0 || seq > 0xFFFF || o->last_seq < 0) return NULL;
    const Slot *slot = &o->slots[(uint32_t)seq & o->mask];
    if (slot->len == 0 || slot->seq != seq) return NULL; /* none, or a newer packet's slot */
    uint32_t kept = o->written - o->valid_from, back = o->written - slot->pos;
    if (kept > o->ring_size) kept = o->ring_size;
    if (back > kept) return NULL; /* its bytes were overwritten */
    uint32_t age_ms = since_epoch_ms(o, monotonic()) - slot->sent_ms;
    if ((double)age_ms > o->history_seconds * 1000.0) return NULL; /* too old to help */
    *len = slot->len;
    /* Bytes ever written and ring places advance together (skipped ends count as written). */
    return o->ring + (o->head >= back ? o->head - back : o->head + o->ring_size - back);
}

/* A packet further behind the newest one sent on the media SSRC than the sender's SRTP replay
   window would fail srtp_protect (replay_old) if sent again as it was. */
static int beyond_replay_window(Outbound *o, long seq) {
    return (uint32_t)((o->last_seq - seq) & 0xFFFF) >= o->replay_window;
}

static PyObject *Outbound_sent(Outbound *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t len;
    const uint8_t *packet = held(self, seq, &len);
    if (packet == NULL || beyond_replay_window(self, seq)) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)packet, len);
}

/* A resend of one packet of the history, as resendable() plans it. */
typedef struct {
    const uint8_t *packet; /* in the ring */
    Py_ssize_t len;        /* its bytes there */
    Py_ssize_t size;       /* what goes on the wire (before SRTP) */
    Py_ssize_t payload_offset, payload_len; /* RTX: the payload without its padding */
    uint8_t rtx_pt;        /* 0: as it was sent, on the media SSRC */
} Resend;

/* Can the packet of sequence number `seq` be resent, and how? On the RTX stream when the
   subscriber accepted RTX for its payload type (RFC 4588 4: the header with the RTX SSRC,
   payload type and sequence number, the original sequence number (OSN), the payload; padding
   left out, as libwebrtc and mediasoup do): the RTX stream's sequence numbers only grow, so
   libsrtp takes any packet the history holds. As it was otherwise (also when the RTX packet,
   two bytes longer, would not fit the datagram forward() allows), within the replay window. */
static int resendable(Outbound *o, long seq, Resend *r) {
    r->packet = held(o, seq, &r->len);
    if (r->packet == NULL) return 0;
    r->size = r->len;
    r->rtx_pt = o->rtx_types[r->packet[1] & 0x7F];
    Header h;
    if (r->rtx_pt && parse(r->packet, r->len, &h) == 0) {
        Py_ssize_t pad = (r->packet[0] & 0x20) ? r->packet[r->len - 1] : 0;
        r->payload_offset = h.payload_offset;
        r->payload_len = r->len - h.payload_offset - pad;
        r->size = h.payload_offset + 2 + r->payload_len;
        if (r->size <= MTU - MAX_SRTP_TAG) return 1;
        r->size = r->len;
    }
    r->rtx_pt = 0;
    return !beyond_replay_window(o, seq);
}

static PyObject *Outbound_resendable(Outbound *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    Resend r;
    if (!resendable(self, seq, &r)) Py_RETURN_NONE;
    return PyLong_FromSsize_t(r.size);
}

static PyObject *Outbound_resend(Outbound *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"seq", "padding", NULL};
    long seq;
    int padding = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "l|p", names, &seq, &padding)) return NULL;
    Resend r;
    if (self->send == Py_None || !resendable(self, seq, &r)) Py_RETURN_NONE;
    /* A copy: the send may run Python (a reroute, a callable) before it has read the bytes. */
    uint8_t buf[MTU];
    if (r.rtx_pt) {
        memcpy(buf, r.packet, r.payload_offset);
        buf[0] &= ~0x20; /* no padding */
        buf[1] = (uint8_t)((r.packet[1] & 0x80) | r.rtx_pt);
        buf[2] = self->rtx_seq >> 8; buf[3] = (uint8_t)self->rtx_seq;
        buf[8] = self->rtx_ssrc >> 24; buf[9] = (uint8_t)(self->rtx_ssrc >> 16);
        buf[10] = (uint8_t)(self->rtx_ssrc >> 8); buf[11] = (uint8_t)self->rtx_ssrc;
        buf[r.payload_offset] = r.packet[2]; /* the OSN */
        buf[r.payload_offset + 1] = r.packet[3];
        memcpy(buf + r.payload_offset + 2, r.packet + r.payload_offset, r.payload_len);
        /* Never the same number twice, even after a failed send: libsrtp may have taken it,
           and would refuse it again (replay_fail). A gap on the RTX stream is never NACKed. */
        self->rtx_seq++;
    } else {
        memcpy(buf, r.packet, r.len);
    }
    /* The header as it was sent, transport-cc element included (where the plan put one): the
       resend carries a transport sequence of its own - while the plans still add the element:
       once a later answer dropped it, one sent before goes as it was, not stamped. */
    Py_ssize_t tcc_at = 0;
    Departures *d = self->transport_seq && Py_IS_TYPE(self->send, &LegType) ? ((Leg *)self->send)->departures : NULL;
    Header h;
    int len;
    if (d != NULL && parse(buf, r.size, &h) == 0) {
        const uint8_t *value = element(buf, &h, d->ext_id, &len);
        if (value != NULL && len == 2) tcc_at = value - buf;
    }
    int rc = outbound_deliver(self, buf, r.size, tcc_at, padding ? SENT_PADDING : SENT_RESEND);
    if (rc == NOT_CONNECTED) {
        PyErr_SetString(PyExc_ConnectionError, "the leg is not connected");
        return NULL;
    }
    if (rc == FAILED) return NULL;
    if (r.rtx_pt) {
        self->rtx_packets_out++;
        self->rtx_payload_bytes_out += 2 + r.payload_len;
    }
    return PyLong_FromSsize_t(r.size);
}

static PyObject *Outbound_set_rtx(Outbound *self, PyObject *args) {
    unsigned int ssrc;
    PyObject *types;
    if (!PyArg_ParseTuple(args, "IO", &ssrc, &types)) return NULL;
    signed char map[128];
    if (rtx_map(types, map) < 0) return NULL;
    uint8_t by_media[128] = {0};
    int any = 0;
    for (int rtx = 0; rtx < 128; rtx++)
        if (map[rtx] >= 0) by_media[(int)map[rtx]] = (uint8_t)rtx, any = 1;
    /* by_media's 0 is "no RTX"; an RTX stream on the media SSRC would mix two numberings on
       one SSRC (the subscriber's jitter buffer, and libsrtp's rollover guess for the media) */
    if (map[0] >= 0 || (any && ssrc == self->ssrc)) {
        PyErr_SetString(PyExc_ValueError, "an RTX payload type is 1..127 and its SSRC is not the media SSRC");
        return NULL;
    }
    memcpy(self->rtx_types, by_media, sizeof by_media);
    self->rtx_ssrc = any ? ssrc : 0;
    Py_RETURN_NONE;
}

static PyObject *Outbound_set_route(Outbound *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"send", "plan_for", "transport_seq", NULL};
    PyObject *send, *plan_for;
    int transport_seq = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|p", names, &send, &plan_for, &transport_seq))
        return NULL;
    if (send != Py_None && !Py_IS_TYPE(send, &LegType) && !PyCallable_Check(send)) {
        PyErr_SetString(PyExc_TypeError, "send must be a Leg, a callable or None");
        return NULL;
    }
    Py_XSETREF(self->send, Py_NewRef(send));
    Py_XSETREF(self->plan_for, Py_NewRef(plan_for));
    self->transport_seq = (char)transport_seq;
    forget_plans(self);
    Py_RETURN_NONE;
}

static PyObject *Outbound_get_last_seq(Outbound *s, void *c) { return optional_int(s->last_seq); }
static PyObject *Outbound_get_last_sent_at(Outbound *s, void *c) {
    if (isnan(s->last_sent_at)) Py_RETURN_NONE;
    return PyFloat_FromDouble(s->last_sent_at);
}
static PyObject *Outbound_get_capacity(Outbound *s, void *c) { return PyLong_FromUnsignedLong(s->max_mask + 1); }
static PyObject *Outbound_get_history_bytes(Outbound *s, void *c) {
    return PyLong_FromUnsignedLong(s->slots == NULL ? 0 : s->ring_size + (s->mask + 1) * sizeof(Slot));
}
static PyObject *Outbound_get_send(Outbound *s, void *c) { return Py_NewRef(s->send); }

static PyGetSetDef Outbound_getset[] = {
    {"last_seq", (getter)Outbound_get_last_seq, NULL, NULL, NULL},
    {"last_sent_at", (getter)Outbound_get_last_sent_at, NULL, NULL, NULL},
    {"history_capacity", (getter)Outbound_get_capacity, NULL, "sequence numbers the history has slots for at most", NULL},
    {"history_bytes", (getter)Outbound_get_history_bytes, NULL, "memory the history holds now (0 until a packet is sent)", NULL},
    {"send", (getter)Outbound_get_send, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Outbound_members[] = {
    {"ready", T_BOOL, offsetof(Outbound, ready), 0, "re-based: packets go out without asking prepare"},
    {"ssrc", T_UINT, offsetof(Outbound, ssrc), 0, NULL},
    {"replay_window", T_UINT, offsetof(Outbound, replay_window), READONLY,
     "sent() answers only this many packets back from the newest (the SRTP replay window)"},
    {"history_seconds", T_DOUBLE, offsetof(Outbound, history_seconds), 0,
     "sent() answers packets sent at most this long ago; the history is sized to hold them "
     "(0: none kept, its memory given back)"},
    {"history_max_bytes", T_UINT, offsetof(Outbound, max_bytes), READONLY,
     "the most the history's ring of packet bytes grows to"},
    {"payload_type", T_INT, offsetof(Outbound, payload_type), 0, NULL},
    {"seq_offset", T_USHORT, offsetof(Outbound, seq_offset), 0, NULL},
    {"ts_offset", T_UINT, offsetof(Outbound, ts_offset), 0, NULL},
    {"vp8", T_BOOL, offsetof(Outbound, vp8), 0, "rewrite the VP8 PictureID and TL0PICIDX"},
    {"picture_id_offset", T_USHORT, offsetof(Outbound, picture_id_offset), 0, NULL},
    {"tl0_offset", T_UBYTE, offsetof(Outbound, tl0_offset), 0, NULL},
    {"rtx_ssrc", T_UINT, offsetof(Outbound, rtx_ssrc), READONLY, "the RTX stream's SSRC (set_rtx)"},
    {"rtx_seq", T_USHORT, offsetof(Outbound, rtx_seq), 0, "the RTX stream's next sequence number"},
    {"rtx_packets_out", T_LONGLONG, offsetof(Outbound, rtx_packets_out), READONLY,
     "resends sent on the RTX stream"},
    {"rtx_payload_bytes_out", T_LONGLONG, offsetof(Outbound, rtx_payload_bytes_out), READONLY,
     "payload octets sent on the RTX stream: the OSN and the original payload (RFC 4588 4)"},
    {"temporal_target", T_UBYTE, offsetof(Outbound, temporal.target), 0,
     "VP8: the highest temporal layer (TID) to forward, 255: all; takes effect at a frame start"},
    {"temporal_layer", T_UBYTE, offsetof(Outbound, temporal.layer), READONLY,
     "VP8: the highest temporal layer forwarded now, 255: all"},
    {"temporal_dropped", T_LONGLONG, offsetof(Outbound, temporal.dropped), READONLY,
     "VP8 packets not forwarded (or sent as padding, late) for their temporal layer"},
    {"last_picture_id", T_INT, offsetof(Outbound, last_picture_id), READONLY, "-1: none sent"},
    {"last_tl0", T_INT, offsetof(Outbound, last_tl0), READONLY, "-1: none sent"},
    {"last_ts", T_UINT, offsetof(Outbound, last_ts), READONLY, NULL},
    {"packets_out", T_LONGLONG, offsetof(Outbound, packets_out), READONLY, NULL},
    {"bytes_out", T_LONGLONG, offsetof(Outbound, bytes_out), READONLY, NULL},
    {"payload_bytes_out", T_LONGLONG, offsetof(Outbound, payload_bytes_out), READONLY, NULL},
    {NULL},
};

static PyMethodDef Outbound_methods[] = {
    {"forward", (PyCFunction)Outbound_forward, METH_O, "Rewrite, keep and send one RTP packet."},
    {"sent", (PyCFunction)Outbound_sent, METH_O,
     "The packet sent with this sequence number while it could be resent as it was, or None."},
    {"resendable", (PyCFunction)Outbound_resendable, METH_O,
     "resendable(seq) -> bytes a resend of it puts on the wire (before SRTP), or None: it cannot go."},
    {"resend", (PyCFunction)(void (*)(void))Outbound_resend, METH_VARARGS | METH_KEYWORDS,
     "resend(seq, padding=False) -> bytes sent (RTX where set_rtx covers its payload type), or None: "
     "it cannot go. padding: a probe's, not a NACK's (what its transport sequence is recorded as). "
     "Raises ConnectionError while the leg is down, the send's error if it failed."},
    {"set_rtx", (PyCFunction)Outbound_set_rtx, METH_VARARGS,
     "set_rtx(ssrc, {RTX payload type: media payload type}): resends go out as RTX (RFC 4588); "
     "an empty dict: as they were sent (rtx_ssrc 0). ValueError: a type outside 1..127, an RTX type "
     "that is its apt or names another RTX type, or ssrc equal to the media ssrc (set ssrc first)."},
    {"set_route", (PyCFunction)(void (*)(void))Outbound_set_route, METH_VARARGS | METH_KEYWORDS,
     "set_route(send, plan_for, transport_seq=False): where packets go (a Leg, a callable or None), "
     "the extension plan source, and whether its plans add a transport-cc element (then a packet "
     "without an extension block is planned too)."},
    {NULL},
};

static PyTypeObject OutboundType = GC_TYPE(Outbound, "One subscription's outgoing stream: header rewrite, send history, send.");

/* ---- Arrivals: transport-wide congestion control feedback (draft-holmer-rmcat-transport-
   wide-cc-extensions-01) -------------------------------------------------------------------- */

/* A publisher whose packets carry the transport-wide sequence number runs its send-side
   estimator (libwebrtc's GoogCC) on our feedback: which of its packets arrived and when. That
   sees loss a policer causes, which our delay-based REMB cannot (a policer adds no delay).
   Per packet: one element lookup and one store into a preallocated ring. The feedback is built
   here too, at ~10 Hz per publishing transport (Python's TransportFeedback decides when). */

#define ARRIVALS 1024       /* ring of arrivals: 100 ms of 10,000 packets/s, a third of a second
                               late feedback at a 3 Mbit/s uplink's ~300 packets/s */
#define TICK_US 250         /* receive delta unit (section 3.1.5) */
#define REFERENCE_US 64000  /* reference time unit (section 3.1) */
#define MAX_FEEDBACK 1200   /* bytes of one feedback packet: within the MTU with SRTCP's trailer */
#define LATE_RESTART 8      /* consecutive sequences this far behind, nothing between: the
                               sender's numbering is there (one bogus packet had moved max) */

typedef struct {
    PyObject_HEAD
    int ext_id;             /* the extension's id on this transport (RFC 8285), 1-255 */
    int started;
    int64_t max;            /* highest transport sequence received, unwrapped */
    int64_t next;           /* first one not yet reported */
    int64_t at[ARRIVALS];   /* arrival (us, CLOCK_MONOTONIC) by unwrapped sequence % ARRIVALS; 0: none */
    uint32_t media_ssrc;    /* the SSRC of the last packet recorded (libwebrtc reports it too) */
    uint8_t feedback_count; /* the feedback packet count field, one more per packet sent */
    int late_run;           /* late arrivals in a row, each the sequence after the one before */
    uint16_t late_last;
    long long recorded, late, duplicates, malformed, restarts;
} Arrivals;

/* One arrival of transport sequence `seq` at `at_us`. Reordering within the ring is kept in
   place; the first arrival of a sequence counts (a duplicate is ignored); one older than the
   ring is dropped; one that arrives after it was reported lost is reported again (as
   libwebrtc's RemoteEstimatorProxy does), so the sender learns it got through. LATE_RESTART
   late ones in a row, consecutive, start the record again from there: one packet numbered
   far ahead (up to 32767) made every packet after it late, and the sender got no feedback
   for the next ~32,000 packets (minutes at a camera's rate). */
static void arrivals_record(Arrivals *a, uint16_t seq, int64_t at_us) {
    if (at_us <= 0) at_us = 1; /* 0 marks "not received" */
    if (!a->started) {
        a->started = 1;
        a->max = a->next = 0x10000 + seq; /* unwrapped values stay positive going back */
        a->at[a->max % ARRIVALS] = at_us;
        a->recorded++;
        return;
    }
    int64_t s = a->max + (int16_t)(seq - (uint16_t)a->max);
    if (s <= a->max - ARRIVALS) {
        a->late_run = a->late_run && seq == (uint16_t)(a->late_last + 1) ? a->late_run + 1 : 1;
        a->late_last = seq;
        if (a->late_run < LATE_RESTART) {
            a->late++;
            return;
        }
        a->late_run = 0;
        a->restarts++;
        a->started = 0;
        memset(a->at, 0, sizeof a->at);
        arrivals_record(a, seq, at_us);
        return;
    }
    a->late_run = 0;
    if (s > a->max) {
        /* the slots from the last maximum on hold arrivals a ring ago: not received yet */
        int64_t from = s - a->max > ARRIVALS ? s - ARRIVALS : a->max + 1;
        for (int64_t i = from; i < s; i++) a->at[i % ARRIVALS] = 0;
        a->max = s;
        if (a->next < s - ARRIVALS + 1) a->next = s - ARRIVALS + 1;
    } else if (a->at[s % ARRIVALS]) {
        a->duplicates++;
        return;
    }
    a->at[s % ARRIVALS] = at_us;
    if (s < a->next) a->next = s;
    a->recorded++;
}

/* Appends `item` (a new reference, or NULL with an exception) to `list`, releasing it: -1 on
   failure. */
static int append_new(PyObject *list, PyObject *item) {
    int rc = item == NULL ? -1 : PyList_Append(list, item);
    Py_XDECREF(item);
    return rc;
}

/* Floor division: a receive delta is in whole ticks at or before the arrival, and what is
   reported is carried on (libwebrtc's encoder does the same), so rounding never accumulates. */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xFFFF); }

/* Packet status symbols (section 3.1.1) */
enum { NOT_RECEIVED = 0, SMALL_DELTA = 1, LARGE_DELTA = 2 };

/* The packet status chunks for `n` symbols into `out`; the bytes written. A run of one symbol
   at least as long as a status vector holds is a run length chunk (section 3.1.3), else a
   one-bit vector of 14 when none of them is a large delta, else a two-bit vector of 7
   (section 3.1.4); the last vector's unused symbols are zeros the status count leaves out. */
static int encode_chunks(const uint8_t *st, int n, uint8_t *out) {
    int len = 0;
    for (int i = 0; i < n;) {
        int run = 1;
        while (i + run < n && st[i + run] == st[i] && run < 0x1FFF) run++;
        int large = 0;
        for (int k = i; k < i + 14 && k < n; k++) large |= st[k] == LARGE_DELTA;
        unsigned chunk;
        if (run >= (large ? 7 : 14) || i + run == n) {
            chunk = (unsigned)st[i] << 13 | (unsigned)run;
            i += run;
        } else if (!large) {
            chunk = 0x8000;
            for (int k = 0; k < 14; k++, i++) chunk |= (unsigned)(i < n && st[i]) << (13 - k);
        } else {
            chunk = 0xC000;
            for (int k = 0; k < 7; k++, i++) chunk |= (unsigned)(i < n ? st[i] : 0) << (12 - 2 * k);
        }
        put16(out + len, chunk);
        len += 2;
    }
    return len;
}

/* One feedback packet from a->next on, as far as deltas fit (a delta outside the large form's
   16 bits ends it: the next packet has its own reference time) and MAX_FEEDBACK allows;
   advances a->next past it. NULL with an exception on failure. */
static PyObject *feedback_packet(Arrivals *a, uint32_t sender_ssrc) {
    uint8_t st[ARRIVALS];
    int16_t deltas[ARRIVALS];
    int64_t first = a->next;
    while (first <= a->max && !a->at[first % ARRIVALS]) first++;
    /* first <= max: max itself was received. The reference time is the first arrival's, in
       64 ms units; its delta is then 0-255 ticks. */
    int64_t reference = a->at[first % ARRIVALS] / REFERENCE_US;
    int64_t reported = reference * REFERENCE_US;
    int n = 0, received = 0, delta_bytes = 0;
    for (int64_t s = a->next; s <= a->max && n < ARRIVALS; s++) {
        int64_t at = a->at[s % ARRIVALS];
        if (!at) {
            st[n++] = NOT_RECEIVED;
        } else {
            int64_t ticks = floor_div(at - reported, TICK_US);
            if (ticks < INT16_MIN || ticks > INT16_MAX) break;
            int size = ticks >= 0 && ticks <= 255 ? 1 : 2;
            /* 20 header bytes, chunks at most 2 per 7 symbols (+1), deltas, 3 padding */
            if (20 + 2 * ((n + 1) / 7 + 1) + delta_bytes + size + 3 > MAX_FEEDBACK) break;
            st[n++] = size == 1 ? SMALL_DELTA : LARGE_DELTA;
            deltas[received++] = (int16_t)ticks;
            delta_bytes += size;
            reported += ticks * TICK_US;
        }
    }
    while (n > 0 && st[n - 1] == NOT_RECEIVED) n--; /* reported with what arrives after them */
    uint8_t buf[MAX_FEEDBACK + 8];
    int len = 20;
    len += encode_chunks(st, n, buf + len);
    for (int i = 0; i < received; i++) {
        if (deltas[i] >= 0 && deltas[i] <= 255) {
            buf[len++] = (uint8_t)deltas[i];
        } else {
            put16(buf + len, (uint16_t)deltas[i]);
            len += 2;
        }
    }
    int padding = (4 - len % 4) % 4;
    if (padding) {
        memset(buf + len, 0, padding);
        len += padding;
        buf[len - 1] = (uint8_t)padding; /* RFC 3550 6.4.1: the last octet counts the padding */
    }
    buf[0] = 0x80 | (padding ? 0x20 : 0) | 15; /* V=2, P, FMT=15 */
    buf[1] = 205;                              /* RTPFB */
    put16(buf + 2, (unsigned)(len / 4 - 1));
    put32(buf + 4, sender_ssrc);
    put32(buf + 8, a->media_ssrc);
    put16(buf + 12, (unsigned)(a->next & 0xFFFF));
    put16(buf + 14, (unsigned)n);
    buf[16] = (uint8_t)(reference >> 16);
    buf[17] = (uint8_t)(reference >> 8);
    buf[18] = (uint8_t)reference;
    buf[19] = a->feedback_count++;
    a->next += n;
    return PyBytes_FromStringAndSize((const char *)buf, len);
}

static PyObject *Arrivals_feedback(Arrivals *a, PyObject *arg) {
    uint32_t sender_ssrc = (uint32_t)PyLong_AsUnsignedLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    while (a->started && a->next <= a->max) {
        if (append_new(out, feedback_packet(a, sender_ssrc)) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *Arrivals_record(Arrivals *a, PyObject *args) {
    int seq;
    long long at_us;
    if (!PyArg_ParseTuple(args, "iL", &seq, &at_us)) return NULL;
    arrivals_record(a, (uint16_t)seq, at_us);
    Py_RETURN_NONE;
}

static int Arrivals_init(Arrivals *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"ext_id", NULL};
    int id;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i", names, &id)) return -1;
    if (id < 1 || id > 255) {
        PyErr_SetString(PyExc_ValueError, "a header extension id is 1-255 (RFC 8285)");
        return -1;
    }
    self->ext_id = id;
    return 0;
}

static int Arrivals_traverse(Arrivals *self, visitproc visit, void *arg) { return 0; }
static int Arrivals_clear(Arrivals *self) { return 0; }

static PyMemberDef Arrivals_members[] = {
    {"ext_id", T_INT, offsetof(Arrivals, ext_id), READONLY, "the transport-cc extension's id"},
    {"recorded", T_LONGLONG, offsetof(Arrivals, recorded), READONLY, "arrivals recorded"},
    {"late", T_LONGLONG, offsetof(Arrivals, late), READONLY, "older than the ring: not recorded"},
    {"duplicates", T_LONGLONG, offsetof(Arrivals, duplicates), READONLY, "a sequence that arrived before"},
    {"restarts", T_LONGLONG, offsetof(Arrivals, restarts), READONLY,
     "records started again after LATE_RESTART consecutive late sequences"},
    {"malformed", T_LONGLONG, offsetof(Arrivals, malformed), READONLY,
     "packets whose element of ext_id is not the 2 bytes of a transport sequence: not recorded"},
    {NULL},
};

static PyMethodDef Arrivals_methods[] = {
    {"feedback", (PyCFunction)Arrivals_feedback, METH_O,
     "feedback(sender_ssrc) -> [bytes]: RTCP transport-cc feedback packets (RTPFB FMT=15) for "
     "every arrival since the last call, gaps reported as not received; [] when nothing arrived."},
    {"record", (PyCFunction)Arrivals_record, METH_VARARGS,
     "record(seq, at_us): one arrival (the Leg records those it receives itself)."},
    {NULL},
};

static PyTypeObject ArrivalsType = GC_TYPE(Arrivals, "A publisher transport's arrivals by transport-wide sequence "
                                                     "number and the feedback on them (draft-holmer-rmcat-transport-wide-cc-extensions-01).");

/* ---- Departures, continued: the subscriber's transport-cc feedback ------------------------- */

static uint8_t statuses[0x10000]; /* one feedback's packet status symbols (the GIL serialises) */

/* A feedback we cannot read: dropped and counted (`dropped` and malformed), never raised into
   the media path; the participant logs the reason once. */
static PyObject *feedback_malformed(Departures *d) {
    d->malformed++;
    count(d->dropped, k_malformed_feedback);
    Py_RETURN_NONE;
}

/* A feedback spans `span` packets (its first sequence to the newest sent): over half the ring,
   the ring doubles (the smallest power of two at least twice the span, up to DEPARTURES_MAX)
   so that the next, likely as long, still finds its packets. A span past DEPARTURES_MAX is a
   base far behind what we sent (a stale or lying feedback): no growth. Out of memory, the
   ring stays as it was. */
static void departures_fit(Departures *d, int64_t span) {
    if (d->ring == NULL || 2 * span <= d->size || span > DEPARTURES_MAX) return;
    int64_t size = d->size;
    while (size < 2 * span && size < DEPARTURES_MAX) size *= 2;
    Departure *ring = PyMem_Calloc((size_t)size, sizeof(Departure));
    if (ring == NULL) return;
    for (int64_t seq = d->next - d->size < 0 ? 0 : d->next - d->size; seq < d->next; seq++)
        ring[seq & (size - 1)] = d->ring[seq & (d->size - 1)];
    PyMem_Free(d->ring);
    d->ring = ring;
    d->size = size;
}

/* The results of one transport-cc feedback packet `p` (n bytes: RTPFB, FMT 15; section 3.1):
   a list, in transport sequence order, of (seq, sent_us, size, arrived_us, kind) for each
   packet it reports that the ring holds and that no feedback delivered yet as received (a
   packet reported lost is delivered again once a later feedback reports it received; never
   twice either way). seq is unwrapped; arrived_us is the receiver's clock (reference time
   x 64 ms + the receive deltas before it, the 24-bit reference time unwrapped across
   feedbacks), -1 when reported not received. None when the packet is malformed: fields or
   chunks or deltas past its length, a reserved status symbol (3), bad padding. A feedback
   with the same packet count as the one before it is a duplicate: []. */
static PyObject *departures_feedback(Departures *d, const uint8_t *p, Py_ssize_t n) {
    if (n < 20 || p[0] >> 6 != 2 || (p[0] & 0x1F) != 15 || p[1] != 205) return feedback_malformed(d);
    Py_ssize_t length = 4 * ((Py_ssize_t)be16(p + 2) + 1);
    if (length > n || length < 20) return feedback_malformed(d);
    n = length;
    if (p[0] & 0x20) { /* RFC 3550 6.4.1: the last octet counts the padding, itself included */
        if (p[n - 1] == 0 || p[n - 1] > n - 20) return feedback_malformed(d);
        n -= p[n - 1];
    }
    uint16_t base = be16(p + 12);
    int status_count = be16(p + 14);
    int32_t reference = (int32_t)(p[16] << 16 | p[17] << 8 | p[18]);
    int feedback_count = p[19];
    Py_ssize_t pos = 20;
    for (int k = 0; k < status_count;) {
        if (pos + 2 > n) return feedback_malformed(d);
        unsigned chunk = be16(p + pos);
        pos += 2;
        if (!(chunk & 0x8000)) { /* run length chunk (3.1.3) */
            uint8_t symbol = (chunk >> 13) & 3;
            if (symbol == 3) return feedback_malformed(d);
            for (unsigned run = chunk & 0x1FFF; run > 0 && k < status_count; run--) statuses[k++] = symbol;
        } else if (!(chunk & 0x4000)) { /* status vector of 14 one-bit symbols (3.1.4) */
            for (int i = 0; i < 14 && k < status_count; i++) statuses[k++] = (chunk >> (13 - i)) & 1;
        } else { /* status vector of 7 two-bit symbols */
            for (int i = 0; i < 7 && k < status_count; i++) {
                uint8_t symbol = (chunk >> (12 - 2 * i)) & 3;
                if (symbol == 3) return feedback_malformed(d);
                statuses[k++] = symbol;
            }
        }
    }
    Py_ssize_t deltas = pos;
    for (int k = 0; k < status_count; k++) pos += statuses[k]; /* 1 byte small, 2 large */
    if (pos > n) return feedback_malformed(d);
    if (d->last_count == feedback_count) {
        d->duplicates++;
        return PyList_New(0);
    }
    d->last_count = feedback_count;
    d->feedbacks++;
    int64_t ref = reference;
    if (d->referenced) {
        int32_t step = (reference - (int32_t)(d->reference & 0xFFFFFF)) & 0xFFFFFF;
        ref = d->reference + (step >= 0x800000 ? step - 0x1000000 : step);
    }
    if (!d->referenced || ref > d->reference) d->reference = ref;
    d->referenced = 1;
    int64_t arrived = ref * REFERENCE_US;
    int64_t last = d->next - 1; /* the newest sequence sent */
    int64_t first = last - (uint16_t)((uint16_t)last - base);
    if (first >= 0) departures_fit(d, last - first + 1); /* else it names packets never sent */
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    pos = deltas;
    for (int k = 0; k < status_count; k++) {
        uint8_t symbol = statuses[k];
        if (symbol == SMALL_DELTA) {
            arrived += TICK_US * (int64_t)p[pos++];
        } else if (symbol == LARGE_DELTA) {
            arrived += TICK_US * (int64_t)(int16_t)be16(p + pos);
            pos += 2;
        }
        int64_t seq = first + k;
        if (seq > last || seq < 0 || seq <= last - d->size) continue; /* not in the ring */
        Departure *e = &d->ring[seq & (d->size - 1)];
        if (e->reported == REPORTED_RECEIVED || (symbol == NOT_RECEIVED && e->reported == REPORTED_LOST))
            continue;
        e->reported = symbol == NOT_RECEIVED ? REPORTED_LOST : REPORTED_RECEIVED;
        if (symbol == NOT_RECEIVED) d->reported_lost++;
        else d->reported_received++;
        PyObject *item = Py_BuildValue("(LLiLi)", (long long)seq, (long long)departures_sent_us(d, e), (int)e->size,
                                       (long long)(symbol == NOT_RECEIVED ? -1 : arrived), (int)e->kind);
        if (append_new(out, item) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *Departures_feedback(Departures *d, PyObject *arg) {
    Py_buffer v;
    if (get_buffer(arg, &v) < 0) return NULL;
    PyObject *out = departures_feedback(d, v.buf, v.len);
    PyBuffer_Release(&v);
    return out;
}

static int Departures_init(Departures *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"ext_id", "dropped", "epoch_us", NULL};
    int id;
    PyObject *dropped;
    long long epoch_us = monotonic_us();
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iO!|$L", names, &id, &PyDict_Type, &dropped, &epoch_us))
        return -1;
    if (id < 1 || id > 255) {
        PyErr_SetString(PyExc_ValueError, "a header extension id is 1-255 (RFC 8285)");
        return -1;
    }
    if (self->ring == NULL) {
        self->ring = PyMem_Calloc(DEPARTURES_FIRST, sizeof(Departure));
        if (self->ring == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->size = DEPARTURES_FIRST;
    }
    self->ext_id = id;
    self->last_count = -1;
    self->epoch_us = self->newest_us = epoch_us;
    Py_XSETREF(self->dropped, Py_NewRef(dropped));
    return 0;
}

static int Departures_traverse(Departures *self, visitproc visit, void *arg) {
    Py_VISIT(self->dropped);
    return 0;
}

static int Departures_clear(Departures *self) {
    Py_CLEAR(self->dropped);
    PyMem_Free(self->ring);
    self->ring = NULL; /* leg_send stamps nothing more, feedback finds nothing in it */
    self->size = 0;
    return 0;
}

static PyMemberDef Departures_members[] = {
    {"ext_id", T_INT, offsetof(Departures, ext_id), READONLY, "the transport-cc extension's id"},
    {"next_seq", T_LONGLONG, offsetof(Departures, next), READONLY,
     "the transport-wide sequence number the next packet sent gets (unwrapped; packets sent so far)"},
    {"feedbacks", T_LONGLONG, offsetof(Departures, feedbacks), READONLY,
     "feedback packets read (not malformed, not duplicates)"},
    {"reported_lost", T_LONGLONG, offsetof(Departures, reported_lost), READONLY,
     "packets delivered as not received"},
    {"reported_received", T_LONGLONG, offsetof(Departures, reported_received), READONLY,
     "packets delivered as received"},
    {"malformed", T_LONGLONG, offsetof(Departures, malformed), READONLY,
     "feedback packets dropped as malformed (also counted in dropped: malformed_transport_feedback)"},
    {"duplicates", T_LONGLONG, offsetof(Departures, duplicates), READONLY,
     "feedback packets with the packet count of the one before: not read again"},
    {"capacity", T_LONGLONG, offsetof(Departures, size), READONLY,
     "packets the ring holds now (8 bytes each): 512, doubled up to 4096 as feedback needs"},
    {NULL},
};

static PyMethodDef Departures_methods[] = {
    {"feedback", (PyCFunction)Departures_feedback, METH_O,
     "feedback(packet) -> [(seq, sent_us, size, arrived_us, kind)] or None (malformed, counted): "
     "one transport-cc feedback packet (RTPFB FMT 15) joined with what we sent."},
    {NULL},
};

static PyTypeObject DeparturesType = GC_TYPE(Departures, "Departures(ext_id, dropped, *, epoch_us=now): a subscriber transport's "
                                                         "departures by transport-wide sequence number and its feedback on them "
                                                         "(draft-holmer-rmcat-transport-wide-cc-extensions-01). epoch_us "
                                                         "(CLOCK_MONOTONIC us): where the ring's 32-bit send times count from (they "
                                                         "wrap every 2^32 us, 71.6 min, after it).");

/* ---- Leg, continued: receive ---------------------------------------------------------------- */

/* One decrypted RTP packet that arrived at `at_us` (monotonic_us). */
static void leg_receive(Leg *leg, const uint8_t *d, Py_ssize_t n, int64_t at_us) {
    Header h;
    if (parse(d, n, &h) < 0) {
        count(leg->dropped, k_malformed_rtp);
        return;
    }
    if (leg->arrivals != NULL && h.ext_offset) {
        /* every packet on the transport counts, RTX and probes too: the sender's estimate is
           of everything it sends */
        Arrivals *a = (Arrivals *)leg->arrivals;
        int len;
        const uint8_t *v = element(d, &h, a->ext_id, &len);
        if (v != NULL && len == 2) {
            arrivals_record(a, be16(v), at_us);
            a->media_ssrc = h.ssrc;
        } else if (v != NULL) {
            a->malformed++; /* reported lost like any gap; the packet itself is forwarded */
        }
    }
    PyObject *key = PyLong_FromUnsignedLong(h.ssrc);
    if (key == NULL) {
        fault(leg->faults, k_where_rtp);
        return;
    }
    PyObject *inbound = PyDict_GetItemWithError(leg->routes, key);
    Py_DECREF(key);
    if (inbound != NULL && Py_IS_TYPE(inbound, &InboundType) && ((Inbound *)inbound)->outbounds) {
        Py_INCREF(inbound);
        PyObject *reason = inbound_receive((Inbound *)inbound, d, n, &h, at_us);
        Py_DECREF(inbound);
        if (reason != NULL) count(leg->dropped, reason);
        return;
    }
    if (PyErr_Occurred()) {
        fault(leg->faults, k_where_rtp);
        return;
    }
    PyObject *r = PyObject_CallFunction(leg->on_rtp, "y#", (const char *)d, n);
    if (r == NULL) fault(leg->faults, k_where_rtp);
    Py_XDECREF(r);
}

static int is_srtp(const uint8_t *d, Py_ssize_t n) { /* SRTP or SRTCP (RFC 7983) */
    return n > 1 && d[0] > 127 && d[0] < 192;
}

/* An SRTP or SRTCP datagram of at most MTU bytes in `buf` that arrived at `at_us`
   (monotonic_us): decrypted in place, handled now. */
static void leg_srtp(Leg *leg, uint8_t *buf, int n, int64_t at_us) {
    int rtcp = buf[1] > 191 && buf[1] < 209;
    int len = n;
    if ((rtcp ? srtp_unprotect_rtcp : srtp_unprotect)(leg->rx, buf, &len)) {
        count(leg->dropped, rtcp ? k_srtcp_rejected : k_srtp_rejected);
        return;
    }
    if (!rtcp) {
        leg_receive(leg, buf, len, at_us);
    } else {
        PyObject *r = PyObject_CallFunction(leg->on_rtcp, "y#L", (const char *)buf, (Py_ssize_t)len,
                                            (long long)at_us);
        if (r == NULL) fault(leg->faults, k_where_rtcp);
        Py_XDECREF(r);
    }
}

static PyObject *Leg_datagram_received(Leg *leg, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "datagram_received(data, addr)");
        return NULL;
    }
    PyObject *data = args[0];
    if (PyBytes_Check(data) && leg->rx != NULL) {
        const uint8_t *d = (const uint8_t *)PyBytes_AS_STRING(data);
        Py_ssize_t n = PyBytes_GET_SIZE(data);
        if (is_srtp(d, n)) {
            uint8_t buf[MTU];
            if (n > MTU) {
                count(leg->dropped, d[1] > 191 && d[1] < 209 ? k_srtcp_rejected : k_srtp_rejected);
                Py_RETURN_NONE;
            }
            /* the event loop read it just now and keeps no kernel receive time */
            leg_srtp(leg, memcpy(buf, d, n), (int)n, monotonic_us());
            Py_RETURN_NONE;
        }
    }
    if (leg->queued == NULL || leg->queued == Py_None) Py_RETURN_NONE;
    return PyObject_Vectorcall(leg->queued, args, 2, NULL);
}

/* What is not SRTP (STUN, DTLS) goes to aioice as its datagram_received(data, (host, port)). */
static void pass_on(Leg *leg, const uint8_t *d, int n, const struct sockaddr_storage *from) {
    if (leg->queued == NULL || leg->queued == Py_None) return;
    char host[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (from->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)from;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (from->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    PyObject *r = PyObject_CallFunction(leg->queued, "y#(si)", (const char *)d, (Py_ssize_t)n, host, port);
    if (r == NULL) fault(leg->faults, k_where_rtp);
    Py_XDECREF(r);
}

/* The event loop's reader callback of the socket the Leg owns (rfd): every datagram waiting,
   RECV_BATCH per recvmmsg, each handled as datagram_received would (as of the time it arrived:
   arrival_of), and the sends they cause flushed with sendmmsg at the end. One wake-up and a few
   system calls for a burst (a video frame arrives as several packets) where the event loop's
   own UDP transport makes a system call, a bytes object, an address tuple and a Python call
   per datagram. */
#define RECV_BATCH 32
#define RECV_ROUNDS 4 /* then back to the loop: other sockets wait their turn */
#define RECV_SIZE 2048
#define RECV_CONTROL 64 /* one SCM_TIMESTAMPNS (32 bytes on 64-bit), with room to spare */
static uint8_t recv_bufs[RECV_BATCH][RECV_SIZE];
static uint8_t recv_control[RECV_BATCH][RECV_CONTROL] __attribute__((aligned(sizeof(size_t))));

/* When each datagram arrived, not when it is handled: the kernel stamps it as it comes in
   (SO_TIMESTAMPNS, set on rfd when the Leg is given it) and recvmmsg hands the stamp over with
   it. Handling time would put every stall of the event loop (a GC pause, a busy callback, the
   32nd datagram of a batch) into the arrival times that transport-cc feedback and the uplink
   estimator report, and a publisher's GCC, or our REMB, reads that as a queue on its uplink
   and cuts its rate. The kernel stamps CLOCK_REALTIME; the offset to CLOCK_MONOTONIC is read
   once per recvmmsg. */
typedef struct {
    int64_t real_us, mono_us; /* the two clocks just after the recvmmsg */
} RecvClock;

static void recv_clock(RecvClock *c) {
    struct timespec r, m;
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &m);
    c->real_us = timespec_us(&r);
    c->mono_us = timespec_us(&m);
}

/* The arrival (monotonic_us) of the datagram `msg` holds: its kernel stamp, no later than the
   read and no earlier than the Leg's last arrival (a wall-clock step between stamp and read
   would move it by the step); the read's time, counted in `unstamped`, when it has none. */
static int64_t arrival_of(Leg *leg, struct msghdr *msg, const RecvClock *c) {
    int64_t at = c->mono_us;
    int stamped = 0;
    if (!(msg->msg_flags & MSG_CTRUNC)) {
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec t;
                memcpy(&t, CMSG_DATA(cm), sizeof t);
                at = timespec_us(&t) - c->real_us + c->mono_us;
                stamped = 1;
            }
        }
    }
    if (!stamped) leg->unstamped++;
    if (at > c->mono_us) at = c->mono_us;
    if (at < leg->last_arrival_us) at = leg->last_arrival_us;
    return leg->last_arrival_us = at;
}

static PyObject *Leg_read_ready(Leg *leg, PyObject *unused) {
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    struct sockaddr_storage from[RECV_BATCH];
    RecvClock clock;
    Py_INCREF(leg); /* a hook may drop the last other reference */
    leg->read_calls++;
    int was = batching;
    batching = 1;
    for (int round = 0; round < RECV_ROUNDS && leg->rfd >= 0; round++) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < RECV_BATCH; i++) {
            iov[i].iov_base = recv_bufs[i];
            iov[i].iov_len = RECV_SIZE;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof from[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = recv_control[i];
            msgs[i].msg_hdr.msg_controllen = RECV_CONTROL;
        }
        int n = recvmmsg(leg->rfd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            /* ECONNREFUSED: an ICMP error for an earlier send, not a datagram */
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNREFUSED)
                count(leg->dropped, k_recv_error);
            break;
        }
        leg->datagrams_read += n;
        recv_clock(&clock);
        for (int i = 0; i < n && leg->rfd >= 0; i++) {
            uint8_t *d = recv_bufs[i];
            int len = (int)msgs[i].msg_len;
            int64_t at_us = arrival_of(leg, &msgs[i].msg_hdr, &clock);
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                count(leg->dropped, k_oversize);
            } else if (leg->rx != NULL && leg->connected && is_srtp(d, len)) {
                if (len > MTU) count(leg->dropped, d[1] > 191 && d[1] < 209 ? k_srtcp_rejected : k_srtp_rejected);
                else leg_srtp(leg, d, len, at_us);
            } else {
                pass_on(leg, d, len, &from[i]);
            }
        }
        if (n < RECV_BATCH) break;
    }
    batching = was;
    if (!batching) flush_sends();
    Py_DECREF(leg);
    Py_RETURN_NONE;
}

static PyObject *Leg_receive_rtp(Leg *leg, PyObject *arg) {
    Py_buffer v;
    if (get_buffer(arg, &v) < 0) return NULL;
    leg_receive(leg, v.buf, v.len, monotonic_us());
    PyBuffer_Release(&v);
    Py_RETURN_NONE;
}

static PyObject *Leg_send(Leg *leg, PyObject *arg) {
    Py_buffer v;
    if (get_buffer(arg, &v) < 0) return NULL;
    int rc = leg_send(leg, v.buf, v.len, 0, SENT_MEDIA);
    PyBuffer_Release(&v);
    if (rc == NOT_CONNECTED) {
        PyErr_SetString(PyExc_ConnectionError, "the leg is not connected");
        return NULL;
    }
    if (rc == FAILED) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Leg_call(Leg *leg, PyObject *args, PyObject *kw) {
    PyObject *packet;
    if (!PyArg_ParseTuple(args, "O", &packet)) return NULL;
    return Leg_send(leg, packet);
}

static void *context(PyObject *address) {
    return PyLong_AsVoidPtr(address);
}

static PyObject *Leg_set_srtp(Leg *leg, PyObject *args) {
    PyObject *rx, *tx, *sessions;
    if (!PyArg_ParseTuple(args, "OOO", &rx, &tx, &sessions)) return NULL;
    if (srtp_protect == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_srtp_functions() first");
        return NULL;
    }
    void *r = context(rx), *t = context(tx);
    if (PyErr_Occurred()) return NULL;
    Py_XSETREF(leg->sessions, Py_NewRef(sessions)); /* before the pointers: they live in it */
    leg->rx = r;
    leg->tx = t;
    Py_RETURN_NONE;
}

static int Leg_init(Leg *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"on_rtp", "on_rtcp", "dropped", "faults", NULL};
    PyObject *on_rtp, *on_rtcp, *dropped, *faults;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO!O", names, &on_rtp, &on_rtcp, &PyDict_Type,
                                     &dropped, &faults))
        return -1;
    Py_XSETREF(self->routes, PyDict_New());
    if (self->routes == NULL) return -1;
    Py_XSETREF(self->on_rtp, Py_NewRef(on_rtp));
    Py_XSETREF(self->on_rtcp, Py_NewRef(on_rtcp));
    Py_XSETREF(self->dropped, Py_NewRef(dropped));
    Py_XSETREF(self->faults, Py_NewRef(faults));
    self->fd = -1;
    self->rfd = -1;
    return 0;
}

static int Leg_traverse(Leg *self, visitproc visit, void *arg) {
    Py_VISIT(self->sessions);
    Py_VISIT(self->routes);
    Py_VISIT(self->on_rtp);
    Py_VISIT(self->on_rtcp);
    Py_VISIT(self->queued);
    Py_VISIT(self->send_queued);
    Py_VISIT(self->reroute);
    Py_VISIT(self->nominated);
    Py_VISIT(self->pair);
    Py_VISIT(self->dropped);
    Py_VISIT(self->faults);
    Py_VISIT(self->arrivals);
    Py_VISIT(self->departures);
    return 0;
}

static int Leg_clear(Leg *self) {
    self->rx = self->tx = NULL;
    Py_CLEAR(self->sessions);
    Py_CLEAR(self->routes);
    Py_CLEAR(self->on_rtp);
    Py_CLEAR(self->on_rtcp);
    Py_CLEAR(self->queued);
    Py_CLEAR(self->send_queued);
    Py_CLEAR(self->reroute);
    Py_CLEAR(self->nominated);
    Py_CLEAR(self->pair);
    Py_CLEAR(self->dropped);
    Py_CLEAR(self->faults);
    Py_CLEAR(self->arrivals);
    Py_CLEAR(self->departures);
    return 0;
}

static PyObject *Leg_get_arrivals(Leg *self, void *c) {
    return Py_NewRef(self->arrivals ? self->arrivals : Py_None);
}

static int Leg_set_arrivals(Leg *self, PyObject *value, void *c) {
    if (value != NULL && value != Py_None && !Py_IS_TYPE(value, &ArrivalsType)) {
        PyErr_SetString(PyExc_TypeError, "arrivals is an Arrivals or None");
        return -1;
    }
    Py_XSETREF(self->arrivals, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static PyObject *Leg_get_departures(Leg *self, void *c) {
    return Py_NewRef(self->departures ? (PyObject *)self->departures : Py_None);
}

static int Leg_set_departures(Leg *self, PyObject *value, void *c) {
    if (value != NULL && value != Py_None && !Py_IS_TYPE(value, &DeparturesType)) {
        PyErr_SetString(PyExc_TypeError, "departures is a Departures or None");
        return -1;
    }
    Py_XSETREF(self->departures, value == NULL || value == Py_None ? NULL : (Departures *)Py_NewRef(value));
    return 0;
}

static PyObject *Leg_get_rfd(Leg *self, void *c) { return PyLong_FromLong(self->rfd); }

/* A socket to read gets the kernel's receive time of each datagram (read_ready). Raises
   OSError when it cannot (not a socket): its datagrams would carry no arrival time. */
static int Leg_set_rfd(Leg *self, PyObject *value, void *c) {
    long fd = value == NULL ? -2 : PyLong_AsLong(value);
    if (fd == -1 && PyErr_Occurred()) return -1;
    if (fd < -1 || fd > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "rfd is a file descriptor or -1");
        return -1;
    }
    int one = 1;
    if (fd >= 0 && setsockopt((int)fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->rfd = (int)fd;
    return 0;
}

static PyGetSetDef Leg_getset[] = {
    {"rfd", (getter)Leg_get_rfd, (setter)Leg_set_rfd,
     "the socket read_ready reads, or -1; setting it turns on the kernel's receive timestamps "
     "(SO_TIMESTAMPNS; OSError when it cannot)", NULL},
    {"arrivals", (getter)Leg_get_arrivals, (setter)Leg_set_arrivals,
     "Arrivals that record the transport-cc sequence of each RTP packet received, or None", NULL},
    {"departures", (getter)Leg_get_departures, (setter)Leg_set_departures,
     "Departures that stamp a transport-cc sequence into each RTP packet sent with the element and "
     "record it, or None", NULL},
    {NULL},
};

static PyMemberDef Leg_members[] = {
    {"routes", T_OBJECT_EX, offsetof(Leg, routes), READONLY, "SSRC -> Inbound"},
    {"on_rtp", T_OBJECT_EX, offsetof(Leg, on_rtp), 0, "(plain) for an SSRC not in routes"},
    {"on_rtcp", T_OBJECT_EX, offsetof(Leg, on_rtcp), 0,
     "(plain, arrival_us) for SRTCP: when it arrived, microseconds of CLOCK_MONOTONIC"},
    {"dropped", T_OBJECT_EX, offsetof(Leg, dropped), 0, "reason -> count"},
    {"faults", T_OBJECT_EX, offsetof(Leg, faults), 0, "record(where, exc) for hook exceptions"},
    {"queued", T_OBJECT, offsetof(Leg, queued), 0, "(data, addr) for what is not SRTP/SRTCP"},
    {"send_queued", T_OBJECT, offsetof(Leg, send_queued), 0, "(protected) when the socket cannot take it"},
    {"reroute", T_OBJECT, offsetof(Leg, reroute), 0, "() when the nominated pair changed"},
    {"nominated", T_OBJECT, offsetof(Leg, nominated), 0, "aioice's nominated pairs (dict)"},
    {"pair", T_OBJECT, offsetof(Leg, pair), 0, "the pair the socket belongs to"},
    {"fd", T_INT, offsetof(Leg, fd), 0, "a socket connected to the remote, or -1"},
    {"read_calls", T_LONGLONG, offsetof(Leg, read_calls), READONLY, NULL},
    {"datagrams_read", T_LONGLONG, offsetof(Leg, datagrams_read), READONLY, NULL},
    {"unstamped", T_LONGLONG, offsetof(Leg, unstamped), READONLY,
     "datagrams read_ready read without the kernel's receive time (timed when read instead)"},
    {"connected", T_BOOL, offsetof(Leg, connected), 0, "DTLS is up"},
    {"packets_sent", T_LONGLONG, offsetof(Leg, packets_sent), READONLY, NULL},
    {NULL},
};

static PyMethodDef Leg_methods[] = {
    {"read_ready", (PyCFunction)Leg_read_ready, METH_NOARGS,
     "The reader callback of rfd: every waiting datagram, received and sent in batches."},
    {"datagram_received", (PyCFunction)(void (*)(void))Leg_datagram_received, METH_FASTCALL,
     "The socket's datagram callback: SRTP/SRTCP are decrypted and handled now."},
    {"receive_rtp", (PyCFunction)Leg_receive_rtp, METH_O, "Route one decrypted RTP packet."},
    {"send", (PyCFunction)Leg_send, METH_O,
     "Encrypt (RTP or RTCP by the second byte) and send; ConnectionError while not up."},
    {"set_srtp", (PyCFunction)Leg_set_srtp, METH_VARARGS,
     "set_srtp(rx_ctx_address, tx_ctx_address, sessions): the keys of this leg."},
    {NULL},
};

static PyTypeObject LegType = GC_TYPE(Leg, "One participant's connection: SRTP both ways, routing by SSRC, the socket. "
              "Calling it sends a packet (as send).");

/* ---- module ------------------------------------------------------------------------------- */

static PyObject *set_srtp_functions(PyObject *m, PyObject *args) {
    PyObject *p, *pr, *u, *ur;
    if (!PyArg_ParseTuple(args, "OOOO", &p, &pr, &u, &ur)) return NULL;
    void *fp = PyLong_AsVoidPtr(p), *fpr = PyLong_AsVoidPtr(pr);
    void *fu = PyLong_AsVoidPtr(u), *fur = PyLong_AsVoidPtr(ur);
    if (PyErr_Occurred()) return NULL;
    if (!fp || !fpr || !fu || !fur) {
        PyErr_SetString(PyExc_ValueError, "null function address");
        return NULL;
    }
    srtp_protect = (srtp_fn)fp;
    srtp_protect_rtcp = (srtp_fn)fpr;
    srtp_unprotect = (srtp_fn)fu;
    srtp_unprotect_rtcp = (srtp_fn)fur;
    Py_RETURN_NONE;
}

static PyObject *apply_plan(PyObject *m, PyObject *args) {
    PyObject *plan;
    Py_buffer v;
    if (!PyArg_ParseTuple(args, "Oy*", &plan, &v)) return NULL;
    Header h;
    PyObject *out = NULL;
    Plan compiled = {0};
    if (parse(v.buf, v.len, &h) < 0) {
        PyErr_SetString(PyExc_ValueError, "not a well-formed RTP packet");
    } else if (compile_plan(plan, h.payload_offset, &compiled) == 0) {
        Py_ssize_t payload = v.len - h.payload_offset;
        out = PyBytes_FromStringAndSize(NULL, compiled.out_len + payload);
        if (out != NULL) {
            uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
            run_plan(&compiled, v.buf, o);
            if (compiled.tcc_at) o[0] |= 0x10; /* as outbound_forward */
            memcpy(o + compiled.out_len, (const uint8_t *)v.buf + h.payload_offset, payload);
        }
    }
    Py_CLEAR(compiled.owner);
    PyBuffer_Release(&v);
    return out;
}

static PyMethodDef module_methods[] = {
    {"set_srtp_functions", set_srtp_functions, METH_VARARGS,
     "Addresses of libsrtp's srtp_protect, srtp_protect_rtcp, srtp_unprotect, srtp_unprotect_rtcp."},
    {"apply_plan", apply_plan, METH_VARARGS,
     "apply_plan(plan, packet) -> bytes: the packet with its header rebuilt by the plan."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rtpforward", "The SFU's per-packet path, compiled.", -1, module_methods,
};

static int intern(PyObject **slot, const char *s) {
    *slot = PyUnicode_InternFromString(s);
    return *slot ? 0 : -1;
}

PyMODINIT_FUNC PyInit_rtpforward(void) {
    if (intern(&k_malformed_rtp, "malformed_rtp") || intern(&k_payload_type, "payload_type") ||
        intern(&k_srtp_rejected, "srtp_rejected") || intern(&k_srtcp_rejected, "srtcp_rejected") ||
        intern(&k_not_connected, "not_connected") || intern(&k_send_error, "send_error") ||
        intern(&k_record, "record") || intern(&k_where_rtp, "rtp") || intern(&k_where_rtcp, "rtcp") ||
        intern(&k_where_forward, "subscription.forward") ||
        intern(&k_where_nack, "publication.nack") || intern(&k_where_frame, "publication.estimate") ||
        intern(&k_where_send, "leg.send") || intern(&k_recv_error, "recv_error") ||
        intern(&k_oversize, "oversize_datagram") || intern(&k_sequence_jump, "sequence_jump") ||
        intern(&k_too_long, "too_long") || intern(&k_temporal_late, "temporal_late") ||
        intern(&k_malformed_vp8, "malformed_vp8") || intern(&k_duplicate, "duplicate") ||
        intern(&k_before_restart, "before_restart") || intern(&k_where_restart, "publication.restart") ||
        intern(&k_where_codec, "publication.codec") || intern(&k_rtx_padding, "rtx_padding") ||
        intern(&k_rtx_unrepaired, "rtx_unrepaired") ||
        intern(&k_malformed_feedback, "malformed_transport_feedback"))
        return NULL;
    k_one = PyLong_FromLong(1);
    InboundType.tp_getset = Inbound_getset;
    OutboundType.tp_getset = Outbound_getset;
    LegType.tp_call = (ternaryfunc)Leg_call;
    LegType.tp_getset = Leg_getset;
    if (PyType_Ready(&LegType) < 0 || PyType_Ready(&InboundType) < 0 || PyType_Ready(&OutboundType) < 0 ||
        PyType_Ready(&ArrivalsType) < 0 || PyType_Ready(&DeparturesType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddType(m, &LegType) < 0 || PyModule_AddType(m, &InboundType) < 0 ||
        PyModule_AddType(m, &OutboundType) < 0 || PyModule_AddType(m, &ArrivalsType) < 0 ||
        PyModule_AddType(m, &DeparturesType) < 0 || PyModule_AddIntConstant(m, "SENT_MEDIA", SENT_MEDIA) < 0 ||
        PyModule_AddIntConstant(m, "SENT_RESEND", SENT_RESEND) < 0 ||
        PyModule_AddIntConstant(m, "SENT_PADDING", SENT_PADDING) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
