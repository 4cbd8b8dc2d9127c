#include "tally.h"

static long tally;

long
tally_add(void)
{
    return ++tally; /* PLANTED global-counter: unsynchronized read-modify-write */
}

long
tally_count(void)
{
    return tally;
}
