/* ftfixture_quirky._q: a thread-safe extension whose shapes trip up introspection.
 *
 * Every mutable field is guarded by a critical section and the module declares
 * Py_MOD_GIL_NOT_USED: its free-threading verdict must be "ready". What it has besides
 * (see ../README.md and expected.yaml, lines tagged PLANTED):
 *   - Tagged: a PyMemberDef named __module__, so Tagged.__module__ is a member descriptor;
 *   - Guarded: attribute access raises RuntimeError for names starting with "secret";
 *   - Counter: state allocated by tp_init; nb_inplace_add dereferences it unchecked, so
 *     `x = Counter.__new__(Counter); x += 1` crashes (a single-threaded bug);
 *   - echo(): returns a value with an exception set for a str argument (a single-threaded
 *     C-API contract bug: SystemError on every such call);
 *   - Thing: tp_name "_q.Thing" (so __module__ is "_q"), exported by the package through a
 *     Python subclass; a `label` property assigned and read under a critical section.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>

/* ---- Tagged ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *origin; /* set in tp_new, never changed */
} TaggedObject;

static PyObject *
Tagged_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    TaggedObject *self = (TaggedObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->origin = PyUnicode_FromString("quirky");
    if (self->origin == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
Tagged_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    Py_XDECREF(((TaggedObject *)op)->origin);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
Tagged_describe(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(((TaggedObject *)op)->origin);
}

static PyMethodDef Tagged_methods[] = {
    {"describe", Tagged_describe, METH_NOARGS, "Return where the object comes from."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Tagged_members[] = {
    /* The type's __module__ is this member descriptor, not a str. */
    {"__module__", Py_T_OBJECT_EX, offsetof(TaggedObject, origin), Py_READONLY, "Origin."}, /* PLANTED member-module */
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Tagged_slots[] = {
    {Py_tp_doc, "An object whose type has a __module__ member descriptor."},
    {Py_tp_new, Tagged_new},
    {Py_tp_dealloc, Tagged_dealloc},
    {Py_tp_methods, Tagged_methods},
    {Py_tp_members, Tagged_members},
    {0, NULL},
};

static PyType_Spec Tagged_spec = {
    .name = "ftfixture_quirky._q.Tagged",
    .basicsize = sizeof(TaggedObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Tagged_slots,
};

/* ---- Guarded ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
} GuardedObject;

static PyObject *
Guarded_getattro(PyObject *op, PyObject *name)
{
    const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    if (text != NULL && strncmp(text, "secret", 6) == 0) {
        /* Not an AttributeError: hasattr() and getattr(o, n, default) raise too. */
        PyErr_Format(PyExc_RuntimeError, "attribute access refused: %U", name); /* PLANTED raising-attribute */
        return NULL;
    }
    return PyObject_GenericGetAttr(op, name);
}

static PyObject *
Guarded_secret(PyObject *op, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(7);
}

static PyObject *
Guarded_value(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(42);
}

static void
Guarded_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyGetSetDef Guarded_getset[] = {
    {"secret", Guarded_secret, NULL, "Listed, never readable.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Guarded_methods[] = {
    {"value", Guarded_value, METH_NOARGS, "Return 42."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Guarded_slots[] = {
    {Py_tp_doc, "An object refusing access to attributes named secret*."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Guarded_dealloc},
    {Py_tp_getattro, Guarded_getattro},
    {Py_tp_getset, Guarded_getset},
    {Py_tp_methods, Guarded_methods},
    {0, NULL},
};

static PyType_Spec Guarded_spec = {
    .name = "ftfixture_quirky._q.Guarded",
    .basicsize = sizeof(GuardedObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Guarded_slots,
};

/* ---- Counter ------------------------------------------------------------------------ */

typedef struct {
    long total;
} CounterState;

typedef struct {
    PyObject_HEAD
    CounterState *state; /* NULL from tp_new until tp_init allocates it */
} CounterObject;

static int
Counter_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"start", NULL};
    long start = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|l:Counter", kwlist, &start)) {
        return -1;
    }
    CounterObject *self = (CounterObject *)op;
    int rc = 0;
    Py_BEGIN_CRITICAL_SECTION(op);
    if (self->state == NULL) {
        self->state = PyMem_Calloc(1, sizeof(CounterState));
    }
    if (self->state == NULL) {
        PyErr_NoMemory();
        rc = -1;
    }
    else {
        self->state->total = start;
    }
    Py_END_CRITICAL_SECTION();
    return rc;
}

static void
Counter_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyMem_Free(((CounterObject *)op)->state);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
Counter_iadd(PyObject *op, PyObject *other)
{
    long n = PyLong_AsLong(other);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    CounterObject *self = (CounterObject *)op;
    Py_BEGIN_CRITICAL_SECTION(op);
    /* state is NULL when __init__ never ran. */
    self->state->total += n; /* PLANTED uninitialised-state */
    Py_END_CRITICAL_SECTION();
    return Py_NewRef(op);
}

static PyObject *
Counter_total(PyObject *op, void *Py_UNUSED(closure))
{
    CounterObject *self = (CounterObject *)op;
    PyObject *result = NULL;
    Py_BEGIN_CRITICAL_SECTION(op);
    if (self->state == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Counter.__init__ was not called");
    }
    else {
        result = PyLong_FromLong(self->state->total);
    }
    Py_END_CRITICAL_SECTION();
    return result;
}

static PyObject *
Counter_repr(PyObject *op)
{
    PyObject *total = Counter_total(op, NULL);
    if (total == NULL) {
        PyErr_Clear();
        return PyUnicode_FromString("Counter(<uninitialised>)");
    }
    PyObject *result = PyUnicode_FromFormat("Counter(%S)", total);
    Py_DECREF(total);
    return result;
}

static PyGetSetDef Counter_getset[] = {
    {"total", Counter_total, NULL, "The running total.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Counter_slots[] = {
    {Py_tp_doc, "A running total: `c += n`."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, Counter_init},
    {Py_tp_dealloc, Counter_dealloc},
    {Py_tp_repr, Counter_repr},
    {Py_tp_getset, Counter_getset},
    {Py_nb_inplace_add, Counter_iadd},
    {0, NULL},
};

static PyType_Spec Counter_spec = {
    .name = "ftfixture_quirky._q.Counter",
    .basicsize = sizeof(CounterObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Counter_slots,
};

/* ---- Thing (short tp_name) ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *label; /* guarded by the object's critical section */
} ThingObject;

static PyObject *
Thing_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ThingObject *self = (ThingObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->label = PyUnicode_FromString("thing");
    if (self->label == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
Thing_set_label(PyObject *op, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "label cannot be deleted");
        return -1;
    }
    ThingObject *self = (ThingObject *)op;
    PyObject *old;
    Py_BEGIN_CRITICAL_SECTION(op);
    old = self->label;
    self->label = Py_NewRef(value);
    Py_END_CRITICAL_SECTION();
    Py_DECREF(old);
    return 0;
}

static PyObject *
Thing_get_label(PyObject *op, void *Py_UNUSED(closure))
{
    PyObject *label;
    Py_BEGIN_CRITICAL_SECTION(op);
    label = Py_NewRef(((ThingObject *)op)->label);
    Py_END_CRITICAL_SECTION();
    return label;
}

static int
Thing_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"label", NULL};
    PyObject *label = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Thing", kwlist, &label)) {
        return -1;
    }
    return label == NULL ? 0 : Thing_set_label(op, label, NULL);
}

static void
Thing_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    Py_XDECREF(((ThingObject *)op)->label);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
Thing_describe(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    PyObject *label = Thing_get_label(op, NULL);
    PyObject *result = PyUnicode_FromFormat("Thing(%R)", label);
    Py_DECREF(label);
    return result;
}

static PyGetSetDef Thing_getset[] = {
    {"label", Thing_get_label, Thing_set_label, "Any object.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Thing_methods[] = {
    {"describe", Thing_describe, METH_NOARGS, "Return 'Thing(<label repr>)'."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Thing_slots[] = {
    {Py_tp_doc, "A labelled thing (tp_name _q.Thing)."},
    {Py_tp_new, Thing_new},
    {Py_tp_init, Thing_init},
    {Py_tp_dealloc, Thing_dealloc},
    {Py_tp_getset, Thing_getset},
    {Py_tp_methods, Thing_methods},
    {0, NULL},
};

static PyType_Spec Thing_spec = {
    /* __module__ is "_q"; the module is ftfixture_quirky._q. */
    .name = "_q.Thing", /* PLANTED short-tp-name */
    .basicsize = sizeof(ThingObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = Thing_slots,
};

/* ---- module ------------------------------------------------------------------------- */

static PyObject *
quirky_echo(PyObject *Py_UNUSED(module), PyObject *arg)
{
    if (PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_ValueError, "echo refuses text");
        /* A result and an exception: SystemError in the caller. */
        return Py_NewRef(arg); /* PLANTED result-with-exception */
    }
    return Py_NewRef(arg);
}

static PyMethodDef quirky_methods[] = {
    {"echo", quirky_echo, METH_O, "Return the argument."},
    {NULL, NULL, 0, NULL},
};

static int
quirky_exec(PyObject *module)
{
    PyType_Spec *specs[] = {&Tagged_spec, &Guarded_spec, &Counter_spec, &Thing_spec};
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        PyObject *type = PyType_FromModuleAndSpec(module, specs[i], NULL);
        if (type == NULL) {
            return -1;
        }
        int rc = PyModule_AddType(module, (PyTypeObject *)type);
        Py_DECREF(type);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

static PyModuleDef_Slot quirky_slots[] = {
    {Py_mod_exec, quirky_exec},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef quirky_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ftfixture_quirky._q",
    .m_doc = "Shapes that trip up introspection, thread-safe otherwise.",
    .m_size = 0,
    .m_methods = quirky_methods,
    .m_slots = quirky_slots,
};

PyMODINIT_FUNC
PyInit__q(void)
{
    return PyModuleDef_Init(&quirky_module);
}
