#ifndef TALLY_H
#define TALLY_H

/* Adds one to the library-wide tally and returns the new count. */
long tally_add(void);
long tally_count(void);

#endif
