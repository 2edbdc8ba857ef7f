// STUB: to be written.
#include "cuda_ops_check.h"

void check_pointwise(gpu_check *g) { (void)g; }
void check_norms(gpu_check *g) { (void)g; }
