/* Quicksort and merge sort of pseudo-random 64-bit keys, repeated; each
 * result must be ordered, both sorts must agree, and the sum and xor of
 * the keys must be preserved. */
#include "work.h"

#define N 40000
#define ROUNDS 90
static u64 a[N], b[N], tmp[N];

static void quicksort(u64 *v, long lo, long hi)
{
	while (lo < hi) {
		u64 p = v[lo + (hi - lo) / 2];
		long i = lo, j = hi;
		while (i <= j) {
			while (v[i] < p)
				i++;
			while (v[j] > p)
				j--;
			if (i <= j) {
				u64 t = v[i];
				v[i++] = v[j];
				v[j--] = t;
			}
		}
		if (j - lo < hi - i) {
			quicksort(v, lo, j);
			lo = i;
		} else {
			quicksort(v, i, hi);
			hi = j;
		}
	}
}

static void mergesort(u64 *v, u64 *t, long n)
{
	for (long w = 1; w < n; w *= 2) {
		for (long lo = 0; lo < n; lo += 2 * w) {
			long mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			long i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				t[k++] = v[i] <= v[j] ? v[i++] : v[j++];
			while (i < mid)
				t[k++] = v[i++];
			while (j < hi)
				t[k++] = v[j++];
		}
		for (long i = 0; i < n; i++)
			v[i] = t[i];
	}
}

int main(void)
{
	u64 s = 88172645463325252ull, acc = 0;
	for (int r = 0; r < ROUNDS; r++) {
		u64 sum = 0, x = 0;
		for (int i = 0; i < N; i++) {
			a[i] = b[i] = xorshift(&s) % (r & 1 ? 1000 : ~0ull); /* odd rounds: many duplicates */
			sum += a[i];
			x ^= a[i];
		}
		quicksort(a, 0, N - 1);
		mergesort(b, tmp, N);
		u64 sum2 = 0, x2 = 0;
		int ordered = 1, same = 1;
		for (int i = 0; i < N; i++) {
			sum2 += a[i];
			x2 ^= a[i];
			if (i && a[i - 1] > a[i])
				ordered = 0;
			if (a[i] != b[i])
				same = 0;
		}
		CHECK(ordered && same && sum == sum2 && x == x2);
		rt_check_no--;
		acc += a[N / 2] ^ a[N / 3];
	}
	rt_check_no++;
	return work_done("sort", acc);
}
