/* A C program that licenses itself with licet through its C ABI (docs/capi.md).
 *
 *   cc -std=c99 -Wall -I crates/licet-capi examples/c/licet_example.c \
 *      -L target/release -llicet_capi -o licet_example
 *   LICET_NUMBER=... LD_LIBRARY_PATH=target/release ./licet_example SERVER DATA_DIR PUBLIC_KEY PRODUCT [FLOATING_PRODUCT]
 *
 * It enters the account's number (from the environment: a command line is visible to every user
 * of the machine, and the number is a credential), checks PRODUCT (and a feature it lacks), then, given a
 * FLOATING_PRODUCT, checks out a floating seat, heartbeats and releases it. One line per step:
 * "<step> <code>" and, where the step asked for it, the JSON. CI runs it against a real server
 * (crates/licet-capi/tests/c_example.rs) and checks these lines. */
#include <stdio.h>
#include <stdlib.h>

#include "licet.h"

/* Prints "<step> <code>" and the JSON if any, frees it, returns the code. (Call the function
 * first: C leaves the order in which a call's arguments are evaluated open.) */
static int report(const char *step, int code, char *json) {
    printf("%s %d%s%s\n", step, code, json ? " " : "", json ? json : "");
    licet_string_free(json);
    return code;
}

int main(int argc, char **argv) {
    const char *number = getenv("LICET_NUMBER");
    if (argc < 5 || number == NULL) {
        fprintf(stderr, "usage: LICET_NUMBER=... %s SERVER DATA_DIR PUBLIC_KEY PRODUCT [FLOATING_PRODUCT]\n", argv[0]);
        return 2;
    }
    const char *server = argv[1], *data_dir = argv[2], *key = argv[3], *product = argv[4];
    const char *floating = argc > 5 ? argv[5] : NULL;

    /* The configuration is JSON; these arguments need no escaping (a real program escapes
     * quotes and backslashes in paths, or writes the JSON with a library). */
    char config[2048];
    int n = snprintf(config, sizeof config, "{\"servers\":\"%s\",\"data_dir\":\"%s\",\"trusted_keys\":[\"%s\"]}",
                     server, data_dir, key);
    if (n < 0 || (size_t)n >= sizeof config) {
        fprintf(stderr, "arguments too long\n");
        return 2;
    }
    licet_agent *agent = licet_agent_new(config);
    if (agent == NULL) {
        char *why = licet_last_error();
        fprintf(stderr, "licet_agent_new: %s\n", why ? why : "?");
        licet_string_free(why);
        return 1;
    }

    char *json = NULL;
    int code, failed = 0;
    failed |= report("set_number", licet_set_number(agent, number, NULL), NULL) != 0;

    /* The everyday call: no JSON, just the code. */
    failed |= report("check", licet_check(agent, product, NULL, NULL), NULL) != 0;
    /* Asked for JSON: the same object as `licet-agent --json check`. */
    code = licet_check(agent, product, NULL, &json);
    failed |= report("check_json", code, json) != 0;
    json = NULL; /* freed by report */
    /* A feature the license lacks: 2009, and why. */
    code = licet_check(agent, product, "telepathy", &json);
    report("check_feature", code, json);
    json = NULL;

    if (floating != NULL) {
        char *session = NULL;
        code = licet_checkout(agent, floating, "ivanov", &session, NULL);
        printf("checkout %d %s\n", code, session ? session : "-");
        failed |= code != 0;
        if (code == 0) {
            failed |= report("heartbeat", licet_heartbeat(agent, session, NULL), NULL) != 0;
            failed |= report("release", licet_release(agent, session, NULL), NULL) != 0;
            /* Released: this agent no longer holds it. */
            report("heartbeat_after_release", licet_heartbeat(agent, session, NULL), NULL);
        }
        licet_string_free(session);
    }

    /* Misuse is an answer, not a crash. */
    report("check_null_product", licet_check(agent, NULL, NULL, NULL), NULL);
    code = licet_status(agent, &json);
    failed |= report("status", code, json) != 0;
    json = NULL;

    licet_agent_free(agent);
    return failed ? 1 : 0;
}
