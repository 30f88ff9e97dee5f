/*
 * Writes one message of tests/contracts/wire-golden.json with the shim's own
 * structs and record-size rule (gofetch_preload.h) and prints it in hex.
 *
 *   wire_golden SOURCE PID DROPPED SENT_NS  then per record:
 *     KIND FLAGS TID FD WORKER EPOCH TIME DEV INO OFFSET LENGTH DURATION PATH_HEX|-
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gofetch_preload.h"

static unsigned char message[GF_MAX_MESSAGE];

int main(int argc, char **argv)
{
    if (argc < 5 || (argc - 5) % 13 != 0)
        return 2;
    struct gf_header h = {{GF_MAGIC0, GF_MAGIC1}, GF_VERSION, (uint8_t)atoi(argv[1]), 0, sizeof h,
                          (uint32_t)strtoul(argv[2], NULL, 10), (uint32_t)strtoul(argv[3], NULL, 10),
                          strtoull(argv[4], NULL, 10)};
    size_t used = sizeof h;
    for (int a = 5; a < argc; a += 13, h.record_count++) {
        struct gf_record r;
        memset(&r, 0, sizeof r);
        r.kind = (uint8_t)atoi(argv[a]);
        r.flags = (uint8_t)atoi(argv[a + 1]);
        r.tid = (uint32_t)strtoul(argv[a + 2], NULL, 10);
        r.fd = (int32_t)strtol(argv[a + 3], NULL, 10);
        r.worker_id = (int32_t)strtol(argv[a + 4], NULL, 10);
        r.epoch = (uint32_t)strtoul(argv[a + 5], NULL, 10);
        r.time_ns = strtoull(argv[a + 6], NULL, 10);
        r.dev = strtoull(argv[a + 7], NULL, 10);
        r.ino = strtoull(argv[a + 8], NULL, 10);
        r.offset = strtoull(argv[a + 9], NULL, 10);
        r.length = strtoull(argv[a + 10], NULL, 10);
        r.duration_ns = (uint32_t)strtoul(argv[a + 11], NULL, 10);
        const char *hex = argv[a + 12];
        uint16_t plen = strcmp(hex, "-") == 0 ? 0 : (uint16_t)(strlen(hex) / 2);
        r.size = (uint16_t)gf_record_size(r.kind, plen);
        memcpy(message + used, &r, sizeof r);
        if (r.size > sizeof r) {
            memcpy(message + used + sizeof r, &plen, 2);
            for (uint16_t i = 0; i < plen; i++) {
                unsigned byte;
                sscanf(hex + 2 * i, "%2x", &byte);
                message[used + sizeof r + 2 + i] = (unsigned char)byte;
            }
        }
        used += r.size;
    }
    memcpy(message, &h, sizeof h);
    for (size_t i = 0; i < used; i++)
        printf("%02x", message[i]);
    printf("\n");
    return 0;
}
