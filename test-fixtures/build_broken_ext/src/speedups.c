#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Returns the reference count of its argument. */
static PyObject *
speedups_refcount(PyObject *module, PyObject *obj)
{
    /* PLANTED build-error: free-threaded objects have no single ob_refcnt field
     * (ob_ref_local/ob_ref_shared); Py_REFCNT(obj) is the portable spelling. */
    return PyLong_FromSsize_t(obj->ob_refcnt);
}

static PyMethodDef speedups_methods[] = {
    {"refcount", speedups_refcount, METH_O, "Reference count of an object."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ftfixture_broken._speedups",
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
