/* Dhrystone-flavoured string and struct code: record copies, string
 * compare/copy/length, character classification, a small hash table of
 * string keys; self-checked by counting what must be found. */
#include "work.h"

#define NREC 512
#define ROUNDS 3600
struct rec { char name[24]; u32 id; u32 score; struct rec *next; };
static struct rec recs[NREC], copies[NREC];
static struct rec *buckets[128];

static size_t slen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static int scmp(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return (uint8_t)*a - (uint8_t)*b; }
static void scpy(char *d, const char *s) { while ((*d++ = *s++)) ; }
static u32 shash(const char *s) { u32 h = 2166136261u; while (*s) h = (h ^ (uint8_t)*s++) * 16777619u; return h; }

static void make_name(char *out, u32 id)
{
	static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "ta", "vo", "xe"};
	int n = 0;
	for (u32 v = id * 2654435761u, k = 0; k < 5; k++, v >>= 3) {
		const char *p = syl[v & 7];
		out[n++] = p[0];
		out[n++] = p[1];
	}
	n += 0;
	out[n++] = (char)('0' + id % 10);
	out[n++] = (char)('0' + id / 10 % 10);
	out[n++] = (char)('0' + id / 100 % 10);
	out[n] = 0;
}

int main(void)
{
	u64 found = 0, total_len = 0, upper = 0;
	for (int r = 0; r < ROUNDS; r++) {
		for (u32 i = 0; i < 128; i++)
			buckets[i] = 0;
		for (u32 i = 0; i < NREC; i++) {
			make_name(recs[i].name, i + (u32)r);
			recs[i].id = i;
			recs[i].score = shash(recs[i].name) & 0xff;
			copies[i] = recs[i]; /* struct copy */
			u32 b = shash(copies[i].name) & 127;
			copies[i].next = buckets[b];
			buckets[b] = &copies[i];
		}
		for (u32 i = 0; i < NREC; i++) {
			char key[24];
			scpy(key, recs[(i * 7) % NREC].name);
			total_len += slen(key);
			for (char *p = key; *p; p++)
				if (*p >= 'a' && *p <= 'z' && (p - key) % 3 == 0) {
					*p = (char)(*p - 32);
					upper++;
				}
			for (char *p = key; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p + 32);
			for (struct rec *e = buckets[shash(key) & 127]; e; e = e->next)
				if (!scmp(e->name, key) && e->score == (shash(key) & 0xff)) {
					found++;
					break;
				}
		}
	}
	CHECK_EQ(found, (u64)NREC * ROUNDS);
	CHECK_EQ(total_len, (u64)NREC * ROUNDS * 13);
	return work_done("strings", found ^ upper);
}
