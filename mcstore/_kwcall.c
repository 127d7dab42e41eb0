/* Keyword calls of the compiled model classes at the speed of positional ones (issue 21).
 *
 * Calling a class goes through type.__call__, which hands its tp_new the arguments as a tuple
 * and a dict: CPython builds the dict from the call's keyword names, and mypyc's argument
 * parser then looks each parameter up in it by a C string (a new str object per lookup). A
 * result built as users write it (keyword arguments) cost about three times one built with
 * positional arguments.
 *
 * install(cls, names) sets the class's tp_vectorcall (the documented slot CPython uses for calls
 * of a type object when it is set, since 3.9) to kwcall below. kwcall moves keyword arguments
 * that name the parameters right after the positional ones (names: the parameters that may be
 * passed by position, in order) into their places, then makes the very call type.__call__
 * makes with positional arguments: PyType_Type.tp_call(cls, args, NULL), i.e. the class's
 * tp_new and tp_init, with its checks and its error messages. Anything else (a keyword that
 * names no such parameter, leaves a gap, repeats a positional one, or a keyword-only one) is
 * handed to type.__call__ with the keywords as a dict, unchanged: the same result, or the same
 * error, as without this module. Only the compiled core installs it (mcstore._select); the
 * pure path calls its classes as Python does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* class -> tuple of interned parameter names; the classes live as long as the process. */
static PyObject *registry = NULL;

static PyObject *
call_with_dict(PyObject *cls, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *tuple = PyTuple_New(nargs);
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    PyObject *kwargs = NULL;
    if (nkw) {
        kwargs = PyDict_New();
        if (kwargs == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        for (Py_ssize_t k = 0; k < nkw; k++) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, k), args[nargs + k]) < 0) {
                Py_DECREF(tuple);
                Py_DECREF(kwargs);
                return NULL;
            }
        }
    }
    PyObject *result = PyType_Type.tp_call(cls, tuple, kwargs);
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* The place in names[start:stop] of the keyword key, or -1. */
static Py_ssize_t
find(PyObject *names, Py_ssize_t start, Py_ssize_t stop, PyObject *key)
{
    for (Py_ssize_t j = start; j < stop; j++) {
        if (PyTuple_GET_ITEM(names, j) == key) {
            return j;
        }
    }
    /* A keyword name that is not the interned string (from a ** dict built at run time). */
    for (Py_ssize_t j = start; j < stop; j++) {
        if (PyUnicode_Compare(PyTuple_GET_ITEM(names, j), key) == 0) {
            return j;
        }
    }
    if (PyErr_Occurred()) {
        PyErr_Clear(); /* the slow path reports a bad keyword as type.__call__ does */
    }
    return -1;
}

static PyObject *
kwcall(PyObject *cls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nkw == 0) {
        return call_with_dict(cls, args, nargs, NULL);
    }
    PyObject *names = PyDict_GetItemWithError(registry, cls); /* borrowed */
    if (names == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        return call_with_dict(cls, args, nargs, kwnames);
    }
    Py_ssize_t total = nargs + nkw;
    if (total > PyTuple_GET_SIZE(names)) {
        return call_with_dict(cls, args, nargs, kwnames);
    }
    PyObject *tuple = PyTuple_New(total); /* its items start NULL */
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    for (Py_ssize_t k = 0; k < nkw; k++) {
        /* Each keyword must fill a distinct place among names[nargs:total]: nkw keywords in nkw
         * places leave no gap. */
        Py_ssize_t at = find(names, nargs, total, PyTuple_GET_ITEM(kwnames, k));
        if (at < 0 || PyTuple_GET_ITEM(tuple, at) != NULL) {
            Py_DECREF(tuple); /* PyTuple_New's NULL items are allowed in a dealloc */
            return call_with_dict(cls, args, nargs, kwnames);
        }
        Py_INCREF(args[nargs + k]);
        PyTuple_SET_ITEM(tuple, at, args[nargs + k]);
    }
    PyObject *result = PyType_Type.tp_call(cls, tuple, NULL);
    Py_DECREF(tuple);
    return result;
}

static PyObject *
install(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyTuple_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "install(cls, names): a class and a tuple of str");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    if (Py_TYPE(type) != &PyType_Type || type->tp_call != NULL) {
        PyErr_Format(PyExc_TypeError, "install(): %R has a metaclass or is callable", args[0]);
        return NULL;
    }
    if (type->tp_vectorcall != NULL && type->tp_vectorcall != kwcall) {
        PyErr_Format(PyExc_ValueError, "install(): %R already has a vectorcall", args[0]);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(args[1]);
    PyObject *names = PyTuple_New(n);
    if (names == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(args[1], i);
        if (!PyUnicode_CheckExact(name)) {
            Py_DECREF(names);
            PyErr_SetString(PyExc_TypeError, "install(): parameter names must be str");
            return NULL;
        }
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        PyTuple_SET_ITEM(names, i, name);
    }
    int failed = PyDict_SetItem(registry, args[0], names);
    Py_DECREF(names);
    if (failed) {
        return NULL;
    }
    type->tp_vectorcall = kwcall;
    Py_RETURN_NONE;
}

static PyObject *
installed(PyObject *module, PyObject *cls)
{
    return PyBool_FromLong(PyType_Check(cls) && ((PyTypeObject *)cls)->tp_vectorcall == kwcall);
}

static PyMethodDef methods[] = {
    {"install", (PyCFunction)(void (*)(void))install, METH_FASTCALL,
     "install(cls, names): keyword calls of cls that name its parameters names, in order, after the "
     "positional ones, are made as positional calls."},
    {"installed", installed, METH_O, "installed(cls): whether install(cls, ...) was done."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "mcstore._native._kwcall", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__kwcall(void)
{
    registry = PyDict_New();
    if (registry == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
