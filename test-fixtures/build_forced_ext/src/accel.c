#define PY_SSIZE_T_CLEAN
#include <Python.h>

static long hits;

static PyObject *
accel_hit(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(++hits); /* PLANTED global-counter: unsynchronized increment */
}

static PyMethodDef accel_methods[] = {
    {"hit", accel_hit, METH_NOARGS, "Count one hit; return the total."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot accel_slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ftfixture_forced._accel",
    .m_methods = accel_methods,
    .m_slots = accel_slots,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    return PyModuleDef_Init(&accel_module);
}
