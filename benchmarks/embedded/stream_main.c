/* The worked example of docs/embedded.md: prequential (test-then-train) learning of a stream with the
 * exported SOLSA learner, as `solsa stream` does it per step and per segment:
 *   a new segment: apply the pending update, reset the state, zero the segment's score;
 *   each step: learn_step (forward, traces, gradient), the prediction is the class with the largest output
 *   summed over the segment so far (this step included), counted against the label;
 *   the end of the stream: apply the pending update.
 * Build: cc -std=c99 -O2 stream_main.c solsa_model.c -lm   Run: ./a.out stream.bin LR [STEPS] */
#include <stdio.h>
#include <stdlib.h>
#include "solsa_model.h"

static solsa_state st; /* static: zero, and no malloc */

int main(int argc, char** argv) {
    FILE* f;
    int n_steps, n_inputs, t, c, correct = 0, segments = 0;
    float x[SOLSA_N_INPUTS], score[SOLSA_N_OUTPUTS], lr;
    if (argc < 3 || argc > 4 || !(f = fopen(argv[1], "rb"))) {
        fprintf(stderr, "usage: %s stream.bin LR [STEPS]\n", argv[0]);
        return 2;
    }
    lr = (float)atof(argv[2]);
    if (fread(&n_steps, 4, 1, f) != 1 || fread(&n_inputs, 4, 1, f) != 1 || n_inputs != SOLSA_N_INPUTS) {
        fprintf(stderr, "%s: not a stream of %d inputs\n", argv[1], SOLSA_N_INPUTS);
        return 2;
    }
    if (argc == 4 && atoi(argv[3]) < n_steps) n_steps = atoi(argv[3]); /* the first STEPS steps only */
    solsa_init(&st);
    for (t = 0; t < n_steps; ++t) {
        int head[2], best = 0;
        const float* y;
        if (fread(head, 4, 2, f) != 2 || fread(x, 4, SOLSA_N_INPUTS, f) != SOLSA_N_INPUTS) return 2;
        if (head[0] && t > 0) { /* a new segment */
            solsa_apply(&st, lr);
            solsa_reset(&st);
        }
        if (head[0]) {
            for (c = 0; c < SOLSA_N_OUTPUTS; ++c) score[c] = 0.0f;
            ++segments;
        }
        solsa_learn_step(&st, x, head[1]);
        y = solsa_output(&st);
        for (c = 0; c < SOLSA_N_OUTPUTS; ++c) {
            score[c] += y[c];
            if (score[c] > score[best]) best = c;
        }
        correct += best == head[1];
    }
    solsa_apply(&st, lr);
    fclose(f);
    printf("%d steps, %d segments: prequential accuracy %.4f (%d/%d); state %d bytes (traces %d)\n", n_steps,
           segments, (double)correct / n_steps, correct, n_steps, (int)sizeof(solsa_state), SOLSA_TRACE_BYTES);
    return 0;
}
