/* ftfixture_clean: the thread-safe twin of ftfixture_racy.
 *
 * Same Python API; each planted bug of the racy twin is fixed the way a port
 * to free threading should fix it (see the `FIX` comments). The module
 * declares Py_MOD_GIL_NOT_USED, so importing it keeps the GIL off.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct {
    PyObject *unit_table;  /* FIX lazy-init: built once, in module exec */
    PyTypeObject *vector_type;
} module_state;

static module_state *
get_state(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

/* ---- global counter ------------------------------------------------- */

static atomic_long call_count = 0;  /* FIX global-counter: C11 atomic */

static PyObject *
fixture_bump(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(atomic_fetch_add(&call_count, 1) + 1);
}

static PyObject *
fixture_calls(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(atomic_load(&call_count));
}

/* ---- unit table, built once ----------------------------------------- */

static PyObject *
build_unit_table(void)
{
    PyObject *table = PyDict_New();
    if (table == NULL) {
        return NULL;
    }
    static const struct { const char *name; long factor; } units[] = {
        {"b", 1}, {"kb", 1024}, {"mb", 1024 * 1024}, {"gb", 1024L * 1024 * 1024},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        PyObject *factor = PyLong_FromLong(units[i].factor);
        if (factor == NULL || PyDict_SetItemString(table, units[i].name, factor) < 0) {
            Py_XDECREF(factor);
            Py_DECREF(table);
            return NULL;
        }
        Py_DECREF(factor);
    }
    return table;
}

static PyObject *
fixture_lookup(PyObject *module, PyObject *unit)
{
    PyObject *factor;
    int found = PyDict_GetItemRef(get_state(module)->unit_table, unit, &factor);
    if (found == 0) {
        PyErr_SetObject(PyExc_KeyError, unit);
    }
    return found > 0 ? factor : NULL;
}

/* ---- ledger: one lock order everywhere ------------------------------ */

static pthread_mutex_t ledger_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t audit_lock = PTHREAD_MUTEX_INITIALIZER;
static long ledger_balance = 0;
static long audit_entries = 0;

/* FIX lock-order: every path takes ledger_lock before audit_lock. */
static void
lock_ledger(void)
{
    pthread_mutex_lock(&ledger_lock);
    pthread_mutex_lock(&audit_lock);
}

static void
unlock_ledger(void)
{
    pthread_mutex_unlock(&audit_lock);
    pthread_mutex_unlock(&ledger_lock);
}

static PyObject *
fixture_deposit(PyObject *module, PyObject *arg)
{
    long amount = PyLong_AsLong(arg);
    if (amount == -1 && PyErr_Occurred()) {
        return NULL;
    }
    lock_ledger();
    ledger_balance += amount;
    audit_entries++;
    long balance = ledger_balance;
    unlock_ledger();
    return PyLong_FromLong(balance);
}

static PyObject *
fixture_audit(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    lock_ledger();
    long entries = audit_entries;
    unlock_ledger();
    return PyLong_FromLong(entries);
}

/* ---- Vector: every field access inside a critical section ----------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t size;
    Py_ssize_t capacity;
    long *items;
} VectorObject;
static int shared_store_publish(VectorObject *self);  /* Vector(..., shared=True), below */

/* Caller holds a critical section on self. */
static int
vector_push(VectorObject *self, long value)
{
    if (self->size == self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 4;
        long *items = PyMem_Realloc(self->items, capacity * sizeof(long));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->items = items;
        self->capacity = capacity;
    }
    self->items[self->size++] = value;
    return 0;
}

static PyObject *
Vector_append(VectorObject *self, PyObject *arg)
{
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int rc;
    Py_BEGIN_CRITICAL_SECTION(self);  /* FIX object-field */
    rc = vector_push(self, value);
    Py_END_CRITICAL_SECTION();
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* Caller holds a critical section on self and other. */
static int
vector_extend_from_vector(VectorObject *self, VectorObject *other)
{
    Py_ssize_t n = other->size;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (vector_push(self, other->items[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Collects the ints first, so no Python code runs inside the critical section. */
static int
vector_extend_from_iterable(VectorObject *self, PyObject *iterable)
{
    PyObject *seq = PySequence_List(iterable);
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(seq);
    long *values = PyMem_Malloc((n ? n : 1) * sizeof(long));
    int rc = values == NULL ? -1 : 0;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        values[i] = PyLong_AsLong(PyList_GET_ITEM(seq, i));
        rc = (values[i] == -1 && PyErr_Occurred()) ? -1 : 0;
    }
    Py_DECREF(seq);
    if (rc == 0) {
        Py_BEGIN_CRITICAL_SECTION(self);
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            rc = vector_push(self, values[i]);
        }
        Py_END_CRITICAL_SECTION();
    }
    PyMem_Free(values);
    return rc;
}

static PyObject *
Vector_extend(VectorObject *self, PyObject *iterable)
{
    PyTypeObject *vector_type = Py_TYPE(self);
    int rc;
    if (Py_IS_TYPE(iterable, vector_type) && iterable != (PyObject *)self) {
        Py_BEGIN_CRITICAL_SECTION2(self, iterable);  /* FIX object-field: lock both */
        rc = vector_extend_from_vector(self, (VectorObject *)iterable);
        Py_END_CRITICAL_SECTION2();
    }
    else {
        rc = vector_extend_from_iterable(self, iterable);
    }
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
Vector_pop(VectorObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *result = NULL;
    Py_BEGIN_CRITICAL_SECTION(self);
    if (self->size == 0) {
        PyErr_SetString(PyExc_IndexError, "pop from empty Vector");
    }
    else {
        result = PyLong_FromLong(self->items[--self->size]);
    }
    Py_END_CRITICAL_SECTION();
    return result;
}

static PyObject *
Vector_clear(VectorObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_BEGIN_CRITICAL_SECTION(self);
    self->size = 0;
    Py_END_CRITICAL_SECTION();
    Py_RETURN_NONE;
}

static PyObject *
Vector_sum(VectorObject *self, PyObject *Py_UNUSED(ignored))
{
    long total = 0;
    Py_BEGIN_CRITICAL_SECTION(self);
    for (Py_ssize_t i = 0; i < self->size; i++) {
        total += self->items[i];
    }
    Py_END_CRITICAL_SECTION();
    return PyLong_FromLong(total);
}

static Py_ssize_t
Vector_length(VectorObject *self)
{
    Py_ssize_t size;
    Py_BEGIN_CRITICAL_SECTION(self);
    size = self->size;
    Py_END_CRITICAL_SECTION();
    return size;
}

static PyObject *
Vector_item(VectorObject *self, Py_ssize_t index)
{
    PyObject *result = NULL;
    Py_BEGIN_CRITICAL_SECTION(self);
    if (index < 0 || index >= self->size) {
        PyErr_SetString(PyExc_IndexError, "Vector index out of range");
    }
    else {
        result = PyLong_FromLong(self->items[index]);
    }
    Py_END_CRITICAL_SECTION();
    return result;
}

static PyObject *
Vector_repr(VectorObject *self)
{
    Py_ssize_t size, capacity;
    Py_BEGIN_CRITICAL_SECTION(self);
    size = self->size;
    capacity = self->capacity;
    Py_END_CRITICAL_SECTION();
    return PyUnicode_FromFormat("Vector(size=%zd, capacity=%zd)", size, capacity);
}

static PyObject *
Vector_get_capacity(VectorObject *self, void *Py_UNUSED(closure))
{
    Py_ssize_t capacity;
    Py_BEGIN_CRITICAL_SECTION(self);
    capacity = self->capacity;
    Py_END_CRITICAL_SECTION();
    return PyLong_FromSsize_t(capacity);
}

static int
Vector_init(VectorObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"iterable", "shared", NULL};
    PyObject *iterable = NULL;
    int shared = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O$p:Vector", kwlist, &iterable, &shared)) {
        return -1;
    }
    Py_BEGIN_CRITICAL_SECTION(self);
    self->size = 0;
    Py_END_CRITICAL_SECTION();
    if (iterable != NULL) {
        PyObject *result = Vector_extend(self, iterable);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
    }
    return shared ? shared_store_publish(self) : 0;
}

static void
Vector_dealloc(VectorObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyMem_Free(self->items);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef Vector_methods[] = {
    {"append", (PyCFunction)Vector_append, METH_O, "append($self, value, /)\n--\n\nAppend an int."},
    {"extend", (PyCFunction)Vector_extend, METH_O, "extend($self, iterable, /)\n--\n\nAppend every int of iterable."},
    {"pop", (PyCFunction)Vector_pop, METH_NOARGS, "pop($self, /)\n--\n\nRemove and return the last int."},
    {"clear", (PyCFunction)Vector_clear, METH_NOARGS, "clear($self, /)\n--\n\nRemove every int."},
    {"sum", (PyCFunction)Vector_sum, METH_NOARGS, "sum($self, /)\n--\n\nReturn the sum of the ints."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Vector_getset[] = {
    {"capacity", (getter)Vector_get_capacity, NULL, "Allocated slots.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Vector_slots[] = {
    {Py_tp_doc, "Vector(iterable=(), /, *, shared=False)\n--\n\nA growable array of C longs; a shared one also publishes its items to the module's store."},
    {Py_tp_init, Vector_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Vector_dealloc},
    {Py_tp_repr, Vector_repr},
    {Py_tp_methods, Vector_methods},
    {Py_tp_getset, Vector_getset},
    {Py_sq_length, Vector_length},
    {Py_sq_item, Vector_item},
    {0, NULL},
};

static PyType_Spec Vector_spec = {
    .name = "ftfixture_clean.Vector",
    .basicsize = sizeof(VectorObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = Vector_slots,
};

/* ---- Registry: strong references only ------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *history;  /* list of registered objects, newest last */
} RegistryObject;

static PyObject *
Registry_add(RegistryObject *self, PyObject *obj)
{
    if (PyList_Append(self->history, obj) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Registry_replace_latest(RegistryObject *self, PyObject *obj)
{
    int rc;
    /* The list's own lock makes size check and replacement one step. */
    Py_BEGIN_CRITICAL_SECTION(self->history);
    Py_ssize_t n = PyList_GET_SIZE(self->history);
    rc = n == 0 ? PyList_Append(self->history, obj)
                : PyList_SetItem(self->history, n - 1, Py_NewRef(obj));
    Py_END_CRITICAL_SECTION();
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
Registry_latest(RegistryObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *item = NULL;
    Py_ssize_t n = PyList_Size(self->history);
    if (n > 0) {
        item = PyList_GetItemRef(self->history, n - 1);  /* FIX borrowed-reference: strong reference */
    }
    if (item == NULL && (n == 0 || PyErr_ExceptionMatches(PyExc_IndexError))) {
        PyErr_SetString(PyExc_LookupError, "Registry is empty");
    }
    return item;
}

static Py_ssize_t
Registry_length(RegistryObject *self)
{
    return PyList_Size(self->history);
}

static int
Registry_init(RegistryObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Registry", kwlist)) {
        return -1;
    }
    PyObject *history = PyList_New(0);
    if (history == NULL) {
        return -1;
    }
    Py_BEGIN_CRITICAL_SECTION(self);
    Py_XSETREF(self->history, history);
    Py_END_CRITICAL_SECTION();
    return 0;
}

/* A registry is usable from creation: `Registry.__new__(Registry)` has an empty history too. */
static PyObject *
Registry_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    RegistryObject *self = (RegistryObject *)PyType_GenericNew(type, args, kwds);
    if (self != NULL && (self->history = PyList_New(0)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
Registry_traverse(RegistryObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->history);
    return 0;
}

static int
Registry_clear(RegistryObject *self)
{
    Py_CLEAR(self->history);
    return 0;
}

static void
Registry_dealloc(RegistryObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Registry_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef Registry_methods[] = {
    {"add", (PyCFunction)Registry_add, METH_O, "add($self, obj, /)\n--\n\nRegister obj as the newest entry."},
    {"replace_latest", (PyCFunction)Registry_replace_latest, METH_O, "replace_latest($self, obj, /)\n--\n\nReplace the newest entry."},
    {"latest", (PyCFunction)Registry_latest, METH_NOARGS, "latest($self, /)\n--\n\nReturn the newest entry."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Registry_slots[] = {
    {Py_tp_doc, "Registry()\n--\n\nAn append-only history of objects."},
    {Py_tp_init, Registry_init},
    {Py_tp_new, Registry_new},
    {Py_tp_dealloc, Registry_dealloc},
    {Py_tp_traverse, Registry_traverse},
    {Py_tp_clear, Registry_clear},
    {Py_tp_methods, Registry_methods},
    {Py_sq_length, Registry_length},
    {0, NULL},
};

static PyType_Spec Registry_spec = {
    .name = "ftfixture_clean.Registry",
    .basicsize = sizeof(RegistryObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = Registry_slots,
};

/* ---- shared store: what Vector(..., shared=True) publishes to -------- */

#define SHARED_STORE_SLOTS 4096
static struct {
    PyMutex lock;  /* FIX shared-store: one mutex for the module-wide store */
    Py_ssize_t used;
    long items[SHARED_STORE_SLOTS];
} shared_store;

static int
shared_store_publish(VectorObject *self)
{
    Py_BEGIN_CRITICAL_SECTION(self);
    PyMutex_Lock(&shared_store.lock);
    for (Py_ssize_t i = 0; i < self->size; i++) {
        shared_store.items[shared_store.used++ % SHARED_STORE_SLOTS] = self->items[i];
    }
    PyMutex_Unlock(&shared_store.lock);
    Py_END_CRITICAL_SECTION();
    return 0;
}

/* ---- format_value: one constant table per mode ------------------------ */

/* FIX mode-cache: no cache to rebuild; every mode has its own constant table. */
static const struct { const char *name; int base; const char *digits; } format_modes[] = {
    {"bin", 2, "01"}, {"oct", 8, "01234567"}, {"dec", 10, "0123456789"},
    {"hex", 16, "0123456789abcdef"}, {"HEX", 16, "0123456789ABCDEF"},
};
#define FORMAT_MODES (sizeof(format_modes) / sizeof(format_modes[0]))

static PyObject *
fixture_format_value(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", "mode", NULL};
    long long value;
    const char *mode = "dec";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L|s:format_value", kwlist, &value, &mode)) {
        return NULL;
    }
    size_t m = 0;
    while (m < FORMAT_MODES && strcmp(format_modes[m].name, mode) != 0) {
        m++;
    }
    if (m == FORMAT_MODES) {
        PyErr_Format(PyExc_ValueError, "unknown mode '%s': use bin, oct, dec, hex or HEX", mode);
        return NULL;
    }
    char buffer[72];
    char *p = buffer + sizeof(buffer);
    *--p = '\0';
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        *--p = format_modes[m].digits[magnitude % format_modes[m].base];
        magnitude /= format_modes[m].base;
    } while (magnitude != 0);
    if (value < 0) {
        *--p = '-';
    }
    return PyUnicode_FromString(p);
}

/* ---- fingerprint: bytes hashed in blocks --------------------------------- */

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL
#define FINGERPRINT_BLOCK 64

static uint64_t
fnv1a(uint64_t hash, const unsigned char *data, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        hash = (hash ^ data[i]) * FNV_PRIME;
    }
    return hash;
}

static PyObject *
fixture_fingerprint(PyObject *module, PyObject *data)
{
    if (PyBytes_Check(data)) {
        const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(data);
        Py_ssize_t n = PyBytes_GET_SIZE(data);
        uint64_t hash = FNV_OFFSET;
        unsigned char scratch[FINGERPRINT_BLOCK];  /* FIX type-fast-path: each call its own block */
        for (Py_ssize_t start = 0; start < n; start += FINGERPRINT_BLOCK) {
            for (Py_ssize_t i = 0; i < FINGERPRINT_BLOCK; i++) {
                scratch[i] = start + i < n ? bytes[start + i] : 0;
            }
            hash = fnv1a(hash, scratch, FINGERPRINT_BLOCK);
        }
        return PyLong_FromUnsignedLongLong(hash);
    }
    PyObject *text = PyObject_Str(data);
    if (text == NULL) {
        return NULL;
    }
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    PyObject *result = utf8 == NULL ? NULL : PyLong_FromUnsignedLongLong(fnv1a(FNV_OFFSET, (const unsigned char *)utf8, n));
    Py_DECREF(text);
    return result;
}

/* ---- Hasher: helper-owned heap state -------------------------------- */

/* A vendored-style digest library: its state is a heap block that
 * digest_new() allocates. The object's PyMutex guards it; a critical
 * section would not, because update() detaches around the digest loop. */
typedef struct {
    unsigned long long acc;
    Py_ssize_t fed;
} digest_state;

static digest_state *
digest_new(void)
{
    return calloc(1, sizeof(digest_state));
}

static void
digest_feed(digest_state *state, const unsigned char *data, Py_ssize_t len)
{
    for (Py_ssize_t i = 0; i < len; i++) {
        state->acc = (state->acc ^ data[i]) * 1099511628211ULL;
    }
    state->fed += len;
}

static unsigned long long
digest_value(const digest_state *state)
{
    return state->acc ^ (unsigned long long)state->fed;
}

typedef struct {
    PyObject_HEAD
    digest_state *state;
    PyMutex lock;
} HasherObject;

static PyObject *
Hasher_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    HasherObject *self = (HasherObject *)PyType_GenericNew(type, args, kwds);
    if (self != NULL && (self->state = digest_new()) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static PyObject *
Hasher_update(HasherObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    PyMutex_Lock(&self->lock);  /* FIX helper-heap-state */
    digest_feed(self->state, view.buf, view.len);
    PyMutex_Unlock(&self->lock);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
Hasher_hexdigest(HasherObject *self, PyObject *Py_UNUSED(ignored))
{
    PyMutex_Lock(&self->lock);
    unsigned long long value = digest_value(self->state);
    PyMutex_Unlock(&self->lock);
    return PyUnicode_FromFormat("%016llx", value);
}

static void
Hasher_dealloc(HasherObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    free(self->state);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef Hasher_methods[] = {
    {"update", (PyCFunction)Hasher_update, METH_O, "update($self, data, /)\n--\n\nFeed a bytes-like object."},
    {"hexdigest", (PyCFunction)Hasher_hexdigest, METH_NOARGS, "hexdigest($self, /)\n--\n\nReturn the digest so far."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Hasher_slots[] = {
    {Py_tp_doc, "Hasher()\n--\n\nA running 64-bit FNV-style digest."},
    {Py_tp_new, Hasher_new},
    {Py_tp_dealloc, Hasher_dealloc},
    {Py_tp_methods, Hasher_methods},
    {0, NULL},
};

static PyType_Spec Hasher_spec = {
    .name = "ftfixture_clean.Hasher",
    .basicsize = sizeof(HasherObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Hasher_slots,
};

/* ---- module --------------------------------------------------------- */

static PyMethodDef module_functions[] = {
    {"bump", fixture_bump, METH_NOARGS, "bump()\n--\n\nCount one call; return the count."},
    {"calls", fixture_calls, METH_NOARGS, "calls()\n--\n\nReturn how often bump() ran."},
    {"lookup", fixture_lookup, METH_O, "lookup(unit, /)\n--\n\nReturn the byte factor of a unit name."},
    {"deposit", fixture_deposit, METH_O, "deposit(amount, /)\n--\n\nAdd amount to the ledger; return the balance."},
    {"audit", fixture_audit, METH_NOARGS, "audit()\n--\n\nReturn how many deposits the ledger saw."},
    {"format_value", (PyCFunction)(void (*)(void))fixture_format_value, METH_VARARGS | METH_KEYWORDS, "format_value(value, mode='dec')\n--\n\nFormat an int in mode bin, oct, dec, hex or HEX."},
    {"fingerprint", fixture_fingerprint, METH_O, "fingerprint(data, /)\n--\n\nA 64-bit fingerprint of bytes, or of str(data)."},
    {NULL, NULL, 0, NULL},
};

static int
add_type(PyObject *module, PyType_Spec *spec)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL) {
        return -1;
    }
    int rc = PyModule_AddType(module, (PyTypeObject *)type);
    Py_DECREF(type);
    return rc;
}

static int
module_exec(PyObject *module)
{
    module_state *state = get_state(module);
    state->unit_table = build_unit_table();
    if (state->unit_table == NULL) {
        return -1;
    }
    PyObject *vector_type = PyType_FromModuleAndSpec(module, &Vector_spec, NULL);
    if (vector_type == NULL) {
        return -1;
    }
    state->vector_type = (PyTypeObject *)vector_type;
    if (PyModule_AddType(module, state->vector_type) < 0) {
        return -1;
    }
    if (add_type(module, &Registry_spec) < 0) {
        return -1;
    }
    return add_type(module, &Hasher_spec);
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *state = get_state(module);
    Py_VISIT(state->unit_table);
    Py_VISIT(state->vector_type);
    return 0;
}

static int
module_clear(PyObject *module)
{
    module_state *state = get_state(module);
    Py_CLEAR(state->unit_table);
    Py_CLEAR(state->vector_type);
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ftfixture_clean",
    .m_doc = "Thread-safe twin of ftfixture_racy.",
    .m_size = sizeof(module_state),
    .m_methods = module_functions,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
};

PyMODINIT_FUNC
PyInit_ftfixture_clean(void)
{
    return PyModuleDef_Init(&module_def);
}
