/* Integer matrix multiply C = A * B (64-bit wrap-around arithmetic),
 * repeated; verified with Freivalds' check C x == A (B x) for random x. */
#include "work.h"

#define N 96
#define REPS 360
static u64 A[N][N], B[N][N], C[N][N];

static void mul(void)
{
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++)
			C[i][j] = 0;
	for (int i = 0; i < N; i++)
		for (int k = 0; k < N; k++) {
			u64 aik = A[i][k];
			for (int j = 0; j < N; j++)
				C[i][j] += aik * B[k][j];
		}
}

static int freivalds(u64 *s)
{
	u64 x[N], bx[N], abx[N], cx[N];
	for (int i = 0; i < N; i++)
		x[i] = xorshift(s);
	for (int i = 0; i < N; i++) {
		bx[i] = cx[i] = 0;
		for (int j = 0; j < N; j++) {
			bx[i] += B[i][j] * x[j];
			cx[i] += C[i][j] * x[j];
		}
	}
	for (int i = 0; i < N; i++) {
		abx[i] = 0;
		for (int j = 0; j < N; j++)
			abx[i] += A[i][j] * bx[j];
		if (abx[i] != cx[i])
			return 0;
	}
	return 1;
}

int main(void)
{
	u64 s = 0xabcdef12345ull, acc = 0;
	for (int r = 0; r < REPS; r++) {
		for (int i = 0; i < N; i++)
			for (int j = 0; j < N; j++) {
				A[i][j] = xorshift(&s) >> (r & 31);
				B[i][j] = xorshift(&s) & 0xffff;
			}
		mul();
		CHECK(freivalds(&s));
		rt_check_no--;
		acc ^= C[r % N][N - 1 - r % N];
	}
	rt_check_no++;
	return work_done("matmul", acc);
}
