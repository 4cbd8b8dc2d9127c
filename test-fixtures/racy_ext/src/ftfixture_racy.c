/* ftfixture_racy: a C extension with planted free-threading bugs.
 *
 * Every planted bug is on a line tagged `PLANTED <category>`; expected.yaml
 * lists them with file, line, function and kind. ftfixture_clean is the twin
 * with the same Python API and every bug fixed. The module declares
 * Py_MOD_GIL_NOT_USED, so importing it keeps the GIL off.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

/* ---- global counter ------------------------------------------------- */

static long call_count = 0;  /* module-wide, shared by every thread */

static PyObject *
fixture_bump(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    call_count++;  /* PLANTED global-counter: unsynchronised read-modify-write */
    return PyLong_FromLong(call_count);
}

static PyObject *
fixture_calls(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(call_count);
}

/* ---- lazy-init cache ------------------------------------------------ */

static PyObject *
build_unit_table(void)
{
    PyObject *table = (usleep(2000), PyDict_New());  /* a slow build, as real ones are: threads overlap */
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
    static PyObject *table = NULL;  /* built on first use */
    if (table == NULL) {  /* PLANTED lazy-init: check-then-set without synchronisation */
        table = build_unit_table();  /* PLANTED lazy-init: racing threads build and leak */
        if (table == NULL) {
            return NULL;
        }
    }
    PyObject *factor = PyDict_GetItemWithError(table, unit);
    if (factor == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, unit);
        }
        return NULL;
    }
    return Py_NewRef(factor);
}

/* ---- lock-order inversion ------------------------------------------- */

/* The gate serialises deposit() and audit() so a stress run cannot hang, but
 * the two inner locks are still taken in opposite orders: remove the gate (as
 * a port to free threading would, to scale) and the two functions deadlock. */
static pthread_mutex_t ledger_gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ledger_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t audit_lock = PTHREAD_MUTEX_INITIALIZER;
static long ledger_balance = 0;
static long audit_entries = 0;

static PyObject *
fixture_deposit(PyObject *module, PyObject *arg)
{
    long amount = PyLong_AsLong(arg);
    if (amount == -1 && PyErr_Occurred()) {
        return NULL;
    }
    pthread_mutex_lock(&ledger_gate);
    pthread_mutex_lock(&ledger_lock);
    pthread_mutex_lock(&audit_lock);  /* PLANTED lock-order: ledger_lock then audit_lock */
    ledger_balance += amount;
    audit_entries++;
    long balance = ledger_balance;
    pthread_mutex_unlock(&audit_lock);
    pthread_mutex_unlock(&ledger_lock);
    pthread_mutex_unlock(&ledger_gate);
    return PyLong_FromLong(balance);
}

static PyObject *
fixture_audit(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    pthread_mutex_lock(&ledger_gate);
    pthread_mutex_lock(&audit_lock);
    pthread_mutex_lock(&ledger_lock);  /* PLANTED lock-order: audit_lock then ledger_lock */
    long entries = audit_entries;
    pthread_mutex_unlock(&ledger_lock);
    pthread_mutex_unlock(&audit_lock);
    pthread_mutex_unlock(&ledger_gate);
    return PyLong_FromLong(entries);
}

/* ---- Vector: an object whose fields nobody protects ----------------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t size;
    Py_ssize_t capacity;
    long *items;
} VectorObject;
static int shared_store_publish(VectorObject *self);  /* Vector(..., shared=True), below */
static PyTypeObject *Vector_Type;  /* set by module exec */

static int
vector_push(VectorObject *self, long value)
{
    if (self->size >= self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 4;
        long *items = PyMem_Realloc(self->items, capacity * sizeof(long));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->items = items;  /* PLANTED object-field: buffer swapped under readers */
        self->capacity = capacity;
    }
    self->items[self->size++] = value;  /* PLANTED object-field: unprotected size/items write */
    return 0;
}

static PyObject *
Vector_append(VectorObject *self, PyObject *arg)
{
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (vector_push(self, value) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Vector_extend(VectorObject *self, PyObject *iterable)
{
    if (PyObject_TypeCheck(iterable, Vector_Type)) {
        VectorObject *other = (VectorObject *)iterable;
        Py_ssize_t n = other->size;  /* PLANTED object-field: other is read while it mutates */
        for (Py_ssize_t i = 0; i < n; i++) {
            if (vector_push(self, other->items[i]) < 0) {  /* PLANTED object-field: and its items */
                return NULL;
            }
        }
        Py_RETURN_NONE;
    }
    PyObject *iterator = PyObject_GetIter(iterable);
    if (iterator == NULL) {
        return NULL;
    }
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        long value = PyLong_AsLong(item);
        Py_DECREF(item);
        if ((value == -1 && PyErr_Occurred()) || vector_push(self, value) < 0) {
            Py_DECREF(iterator);
            return NULL;
        }
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Vector_pop(VectorObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->size == 0) {
        PyErr_SetString(PyExc_IndexError, "pop from empty Vector");
        return NULL;
    }
    return PyLong_FromLong(self->items[--self->size]);
}

static PyObject *
Vector_clear(VectorObject *self, PyObject *Py_UNUSED(ignored))
{
    self->size = 0;
    Py_RETURN_NONE;
}

static PyObject *
Vector_sum(VectorObject *self, PyObject *Py_UNUSED(ignored))
{
    long total = 0;
    for (Py_ssize_t i = 0; i < self->size; i++) {
        total += self->items[i];  /* races with vector_push (see there) */
    }
    return PyLong_FromLong(total);
}

static Py_ssize_t
Vector_length(VectorObject *self)
{
    return self->size;
}

static PyObject *
Vector_item(VectorObject *self, Py_ssize_t index)
{
    if (index < 0 || index >= self->size) {
        PyErr_SetString(PyExc_IndexError, "Vector index out of range");
        return NULL;
    }
    return PyLong_FromLong(self->items[index]);
}

static PyObject *
Vector_repr(VectorObject *self)
{
    return PyUnicode_FromFormat("Vector(size=%zd, capacity=%zd)", self->size, self->capacity);
}

static PyObject *
Vector_get_capacity(VectorObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->capacity);
}

static int
Vector_init(VectorObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"iterable", "shared", NULL};
    PyObject *iterable = NULL;
    int shared = 0;  /* keyword-only: Vector(iterable, shared=True) */
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O$p:Vector", kwlist, &iterable, &shared)) {
        return -1;
    }
    self->size = 0;
    PyObject *result = iterable != NULL ? Vector_extend(self, iterable) : Py_NewRef(Py_None);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    /* A shared vector also publishes its items to the module-wide store (see there). */
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
    .name = "ftfixture_racy.Vector",
    .basicsize = sizeof(VectorObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = Vector_slots,
};

/* ---- Registry: borrowed references ---------------------------------- */

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
    Py_ssize_t n = PyList_Size(self->history);
    if (n == 0) {
        return Registry_add(self, obj);
    }
    if (PyList_SetItem(self->history, n - 1, Py_NewRef(obj)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Registry_latest(RegistryObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t n = PyList_Size(self->history);
    if (n == 0) {
        PyErr_SetString(PyExc_LookupError, "Registry is empty");
        return NULL;
    }
    PyObject *item = PyList_GetItem(self->history, n - 1);  /* PLANTED borrowed-reference: item may be replaced and freed */
    return Py_XNewRef(item);
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
    Py_XSETREF(self->history, PyList_New(0));
    return self->history == NULL ? -1 : 0;
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
    .name = "ftfixture_racy.Registry",
    .basicsize = sizeof(RegistryObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = Registry_slots,
};

/* ---- shared store: what Vector(..., shared=True) publishes to -------- */

/* Every shared vector appends its items to one module-wide ring, for statistics across
 * vectors (the store a real extension would map from a file). Nothing guards it, but only
 * vectors built with shared=True ever touch it. */
#define SHARED_STORE_SLOTS 4096
static struct {
    Py_ssize_t used;
    long items[SHARED_STORE_SLOTS];
} shared_store;

static int
shared_store_publish(VectorObject *self)
{
    for (Py_ssize_t i = 0; i < self->size; i++) {
        Py_ssize_t slot = shared_store.used++ % SHARED_STORE_SLOTS;  /* PLANTED constructor-option: unsynchronised slot claim */
        shared_store.items[slot] = self->items[i];  /* PLANTED constructor-option: two vectors fill one slot */
    }
    return 0;
}

/* ---- format_value: a table cached for the last mode ------------------ */

static const struct { const char *name; int base; const char *digits; } format_modes[] = {
    {"bin", 2, "01"}, {"oct", 8, "01234567"}, {"dec", 10, "0123456789"},
    {"hex", 16, "0123456789abcdef"}, {"HEX", 16, "0123456789ABCDEF"},
};
#define FORMAT_MODES (sizeof(format_modes) / sizeof(format_modes[0]))

/* The digits of the mode formatted last; a call in another mode rebuilds them in place. */
static struct {
    size_t mode;
    int base;
    char digits[17];
} format_cache = {2, 10, "0123456789"};

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
    if (format_cache.mode != m) {  /* PLANTED mode-cache: read while another mode rebuilds */
        format_cache.mode = m;  /* PLANTED mode-cache: the rebuild races every formatter */
        format_cache.base = format_modes[m].base;  /* PLANTED mode-cache: base of the new mode */
        for (int i = 0; i < format_modes[m].base; i++) {
            format_cache.digits[i] = format_modes[m].digits[i];  /* PLANTED mode-cache: digits rewritten in place */
        }
    }
    char buffer[72];
    char *p = buffer + sizeof(buffer);
    *--p = '\0';
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        *--p = format_cache.digits[magnitude % format_cache.base];
        magnitude /= format_cache.base;
    } while (magnitude != 0);
    if (value < 0) {
        *--p = '-';
    }
    return PyUnicode_FromString(p);
}

/* ---- fingerprint: a fast path for bytes through a scratch block ------ */

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

static unsigned char fingerprint_scratch[FINGERPRINT_BLOCK];  /* bytes are padded here */

static PyObject *
fixture_fingerprint(PyObject *module, PyObject *data)
{
    if (PyBytes_Check(data)) {  /* fast path: whole blocks, no str() */
        const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(data);
        Py_ssize_t n = PyBytes_GET_SIZE(data);
        uint64_t hash = FNV_OFFSET;
        for (Py_ssize_t start = 0; start < n; start += FINGERPRINT_BLOCK) {
            for (Py_ssize_t i = 0; i < FINGERPRINT_BLOCK; i++) {
                fingerprint_scratch[i] = start + i < n ? bytes[start + i] : 0;  /* PLANTED argument-type: one scratch block for every thread */
            }
            hash = fnv1a(hash, fingerprint_scratch, FINGERPRINT_BLOCK);  /* PLANTED argument-type: read while another thread refills it */
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
 * digest_new() allocates; the Python object holds only the pointer. */
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
        state->acc = (state->acc ^ data[i]) * 1099511628211ULL;  /* PLANTED helper-heap-state: unlocked update */
    }
    state->fed += len;  /* PLANTED helper-heap-state: unlocked update */
}

static unsigned long long
digest_value(const digest_state *state)
{
    return state->acc ^ (unsigned long long)state->fed;
}

typedef struct {
    PyObject_HEAD
    digest_state *state;
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
    digest_feed(self->state, view.buf, view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
Hasher_hexdigest(HasherObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyUnicode_FromFormat("%016llx", digest_value(self->state));
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
    .name = "ftfixture_racy.Hasher",
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
add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **slot)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL) {
        return -1;
    }
    if (slot != NULL) {
        *slot = (PyTypeObject *)type;
    }
    int rc = PyModule_AddType(module, (PyTypeObject *)type);
    if (slot == NULL) {
        Py_DECREF(type);
    }
    return rc;
}

static int
module_exec(PyObject *module)
{
    if (add_type(module, &Vector_spec, &Vector_Type) < 0) {
        return -1;
    }
    if (add_type(module, &Registry_spec, NULL) < 0) {
        return -1;
    }
    return add_type(module, &Hasher_spec, NULL);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ftfixture_racy",
    .m_doc = "Fixture with planted free-threading bugs (see expected.yaml).",
    .m_size = 0,
    .m_methods = module_functions,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit_ftfixture_racy(void)
{
    return PyModuleDef_Init(&module_def);
}
