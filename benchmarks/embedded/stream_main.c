/* The worked example of docs/embedded.md: prequential (test-then-train) learning of a stream with the
 * exported SOLSA learner, as `solsa stream` does it per step and per segment:
 *   a new segment: apply the pending update, reset the state, zero the segment's score;
 *   each step: learn_step (forward, traces, gradient), the prediction is the class with the largest output
 *   summed over the segment so far (this step included), each earlier step's weighted by 1 - 1/HORIZON per
 *   step since (solsa stream's default --horizon), counted against the label;
 *   the end of the stream: apply the pending update.
 * The stream's values have the export's type (solsa_real: float, or double with --dtype float64).
 * Build: cc -std=c99 -O2 stream_main.c solsa_model.c -lm   Run: ./a.out stream.bin LR [STEPS] */
#include <stdio.h>
#include <stdlib.h>
#include "solsa_model.h"

#define HORIZON 1000 /* solsa stream's default --horizon (DEFAULT_HORIZON of solsa/stream) */

static solsa_state st; /* static: zero, and no malloc */

int main(int argc, char** argv) {
    FILE* f;
    int n_steps, n_inputs, size, t, c, correct = 0, segments = 0;
    solsa_real x[SOLSA_N_INPUTS], score[SOLSA_N_OUTPUTS], lr;
    const solsa_real decay = (solsa_real)(1.0 - 1.0 / HORIZON);
    if (argc < 3 || argc > 4 || !(f = fopen(argv[1], "rb"))) {
        fprintf(stderr, "usage: %s stream.bin LR [STEPS]\n", argv[0]);
        return 2;
    }
    lr = (solsa_real)atof(argv[2]);
    if (fread(&n_steps, 4, 1, f) != 1 || fread(&n_inputs, 4, 1, f) != 1 || fread(&size, 4, 1, f) != 1 ||
        n_inputs != SOLSA_N_INPUTS || size != (int)sizeof(solsa_real)) {
        fprintf(stderr, "%s: not a stream of %d inputs of %d bytes\n", argv[1], SOLSA_N_INPUTS,
                (int)sizeof(solsa_real));
        return 2;
    }
    if (argc == 4 && atoi(argv[3]) < n_steps) n_steps = atoi(argv[3]); /* the first STEPS steps only */
    solsa_init(&st);
    for (t = 0; t < n_steps; ++t) {
        int head[2], best = 0;
        const solsa_real* y;
        if (fread(head, 4, 2, f) != 2 || fread(x, sizeof(solsa_real), SOLSA_N_INPUTS, f) != SOLSA_N_INPUTS) return 2;
        if (head[0] && t > 0) { /* a new segment */
            solsa_apply(&st, lr);
            solsa_reset(&st);
        }
        if (head[0]) {
            for (c = 0; c < SOLSA_N_OUTPUTS; ++c) score[c] = 0;
            ++segments;
        }
        solsa_learn_step(&st, x, head[1]);
        y = solsa_output(&st);
        for (c = 0; c < SOLSA_N_OUTPUTS; ++c) {
            score[c] = score[c] * decay + y[c];
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
