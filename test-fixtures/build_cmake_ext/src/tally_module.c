#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "tally.h"

static PyObject *
module_add(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(tally_add());
}

static PyObject *
module_count(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(tally_count());
}

static PyMethodDef tally_methods[] = {
    {"add", module_add, METH_NOARGS, "Count one call; return the total."},
    {"count", module_count, METH_NOARGS, "The total so far."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot tally_slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef tally_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ftfixture_cmake._tally",
    .m_methods = tally_methods,
    .m_slots = tally_slots,
};

PyMODINIT_FUNC
PyInit__tally(void)
{
    return PyModuleDef_Init(&tally_module);
}
